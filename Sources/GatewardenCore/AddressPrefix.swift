#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 network in CIDR notation, held the way the XDP maps hold addresses:
/// 16 bytes, IPv4 mapped into ::ffff:0:0/96.
///
///     let prefix = try AddressPrefix("192.0.2.0/24")
///     prefix.mappedLength   // 120
///     prefix.description    // "192.0.2.0/24"
public struct AddressPrefix: Hashable, Sendable, CustomStringConvertible {
    /// The network address, IPv4-mapped for IPv4.
    public let bytes: [UInt8]
    /// The prefix length in the address's own family (0...32 or 0...128).
    public let length: Int
    public let isIPv4: Bool

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public let text: String
        public let reason: String
        public var description: String { "'\(text)' is not a valid CIDR: \(reason)" }
    }

    /// Parses `ADDRESS/LENGTH` or a bare address (a host prefix). Host bits must be zero:
    /// `192.0.2.1/24` is an error, because it usually means a typo.
    public init(_ text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let addressText = parts.first, !addressText.isEmpty else {
            throw ParseError(text: text, reason: "expected ADDRESS/LENGTH")
        }
        var v4 = in_addr()
        var v6 = in6_addr()
        let family: Int32
        var address = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, String(addressText), &v4) == 1 {
            family = AF_INET
            address[10] = 0xff
            address[11] = 0xff
            withUnsafeBytes(of: &v4) { address.replaceSubrange(12..<16, with: $0) }
        } else if inet_pton(AF_INET6, String(addressText), &v6) == 1 {
            family = AF_INET6
            withUnsafeBytes(of: &v6) { address = Array($0) }
        } else {
            throw ParseError(text: text, reason: "'\(addressText)' is neither an IPv4 nor an IPv6 address")
        }
        let maximum = family == AF_INET ? 32 : 128
        var length = maximum
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), (0...maximum).contains(parsed) else {
                throw ParseError(text: text, reason: "the prefix length must be 0 to \(maximum)")
            }
            length = parsed
        }
        let candidate = AddressPrefix(uncheckedBytes: address, length: length, isIPv4: family == AF_INET)
        guard candidate.masked(address) == address else {
            throw ParseError(text: text, reason: "host bits are set (did you mean \(candidate.networkDescription)?)")
        }
        self = candidate
    }

    /// The network of `length` bits that contains `address` (16 bytes, IPv4 mapped into ::ffff:0:0/96
    /// as `bytes` holds it): host bits are cleared, not refused. Nil for another byte count or a
    /// length outside the family's range.
    ///
    ///     AddressPrefix(containing: bytesOf192_0_2_77, length: 24, isIPv4: true)   // 192.0.2.0/24
    public init?(containing address: [UInt8], length: Int, isIPv4: Bool) {
        guard address.count == 16, (0...(isIPv4 ? 32 : 128)).contains(length) else { return nil }
        let unmasked = AddressPrefix(uncheckedBytes: address, length: length, isIPv4: isIPv4)
        self.init(uncheckedBytes: unmasked.masked(address), length: length, isIPv4: isIPv4)
    }

    package init(uncheckedBytes: [UInt8], length: Int, isIPv4: Bool) {
        self.bytes = uncheckedBytes
        self.length = length
        self.isIPv4 = isIPv4
        // Normalise so equal networks compare equal.
    }

    /// The length over the 128-bit mapped form, as the LPM tries store it.
    public var mappedLength: Int { isIPv4 ? 96 + length : length }

    /// `address` with the bits beyond this prefix cleared.
    func masked(_ address: [UInt8]) -> [UInt8] {
        (0..<16).map { index in
            let bit = index * 8
            if mappedLength >= bit + 8 { return address[index] }
            if mappedLength > bit { return address[index] & UInt8(truncatingIfNeeded: 0xff << (8 - (mappedLength - bit))) }
            return 0
        }
    }

    /// The network of `length` (in the prefix's own family) that contains this one: a source's /24,
    /// an IPv6 source's /64. A length beyond this prefix's keeps it as it is.
    ///
    ///     try AddressPrefix("198.51.100.7").widened(to: 24)   // 198.51.100.0/24
    public func widened(to length: Int) -> AddressPrefix {
        guard length < self.length, length >= 0 else { return self }
        let wider = AddressPrefix(uncheckedBytes: bytes, length: length, isIPv4: isIPv4)
        return AddressPrefix(uncheckedBytes: wider.masked(bytes), length: length, isIPv4: isIPv4)
    }

    /// Whether this IPv6 prefix reaches into ::/64, where the IPv4-mapped addresses (::ffff:0:0/96)
    /// live: the XDP maps hold IPv4 sources under those keys, so such a prefix in a list would
    /// judge IPv4 traffic (`::/64` banned = every IPv4 client banned). No real peer sends from
    /// there; lists refuse these prefixes. IPv4 prefixes are never affected.
    ///
    ///     try AddressPrefix("::/64").reachesIPv4MappedSpace          // true
    ///     try AddressPrefix("::ffff:192.0.2.1").reachesIPv4MappedSpace // true
    ///     try AddressPrefix("2001:db8::/32").reachesIPv4MappedSpace  // false
    public var reachesIPv4MappedSpace: Bool {
        // Bits past the length are zero, so a shorter prefix covers ::/64 exactly when its first
        // 64 bits are zero, and a longer one lies inside it exactly then too.
        !isIPv4 && bytes[0..<8].allSatisfy { $0 == 0 }
    }

    /// Why a prefix cannot be a list entry or a ban, or nil when it can: all addresses (/0), or an
    /// IPv6 prefix reaching into the IPv4-mapped space.
    public var listProblem: String? {
        if length == 0 { return "/0 would cover every address" }
        if reachesIPv4MappedSpace {
            return "IPv6 prefixes inside ::/64 (IPv4-mapped and -compatible addresses) would judge IPv4 traffic; "
                + "write the IPv4 network instead"
        }
        return nil
    }

    /// Whether `other` lies inside this prefix (or is it).
    public func contains(_ other: AddressPrefix) -> Bool {
        isIPv4 == other.isIPv4 && length <= other.length && overlaps(other)
    }

    /// Whether `other` lies inside this prefix or this inside it.
    public func overlaps(_ other: AddressPrefix) -> Bool {
        let shorter = mappedLength <= other.mappedLength ? self : other
        let longer = mappedLength <= other.mappedLength ? other : self
        return shorter.masked(longer.bytes) == shorter.bytes
    }

    private var networkDescription: String {
        AddressPrefix(uncheckedBytes: masked(bytes), length: length, isIPv4: isIPv4).description
    }

    public var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        if isIPv4 {
            var v4 = in_addr()
            withUnsafeMutableBytes(of: &v4) { $0.copyBytes(from: bytes[12..<16]) }
            inet_ntop(AF_INET, &v4, &text, socklen_t(text.count))
        } else {
            var v6 = in6_addr()
            withUnsafeMutableBytes(of: &v6) { $0.copyBytes(from: bytes) }
            inet_ntop(AF_INET6, &v6, &text, socklen_t(text.count))
        }
        let address = String(decoding: text.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "\(address)/\(length)"
    }
}
