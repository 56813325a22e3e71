#if canImport(Glibc)
import Glibc
#endif
import GatewardenCore

/// A client's IP address as two 64-bit halves, cheap to hash and to mask, the way the feed keeps
/// millions of them. IPv4 sits in the low half's low 32 bits; an IPv4-mapped IPv6 address
/// (`::ffff:192.0.2.1`) is read as the IPv4 address it is.
///
///     ClientAddress(text: "192.0.2.77")!.network(ipv4Prefix: 24, ipv6Prefix: 64)   // 192.0.2.0/24
public struct ClientAddress: Hashable, Sendable {
    public var high: UInt64
    public var low: UInt64
    public var isIPv4: Bool

    public init(high: UInt64, low: UInt64, isIPv4: Bool) {
        self.high = high
        self.low = low
        self.isIPv4 = isIPv4
    }

    /// Reads a dotted-quad IPv4 address or an IPv6 address; nil for anything else.
    public init?(text: UnsafeRawBufferPointer.SubSequence) {
        if let v4 = Self.ipv4(text) {
            self.init(high: 0, low: UInt64(v4), isIPv4: true)
            return
        }
        // The longest IPv6 text (with an embedded IPv4) is 45 characters.
        guard text.count >= 2, text.count <= 45, text.contains(UInt8(ascii: ":")) else { return nil }
        var parsed = in6_addr()
        let converted = withUnsafeTemporaryAllocation(of: CChar.self, capacity: 46) { buffer -> Bool in
            var index = 0
            for byte in text {
                buffer[index] = CChar(bitPattern: byte)
                index += 1
            }
            buffer[index] = 0
            return inet_pton(AF_INET6, buffer.baseAddress, &parsed) == 1
        }
        guard converted else { return nil }
        let (high, low) = withUnsafeBytes(of: &parsed) { bytes -> (UInt64, UInt64) in
            var high: UInt64 = 0, low: UInt64 = 0
            for index in 0..<8 { high = high << 8 | UInt64(bytes[index]) }
            for index in 8..<16 { low = low << 8 | UInt64(bytes[index]) }
            return (high, low)
        }
        if high == 0 && low >> 32 == 0xffff {
            self.init(high: 0, low: low & 0xffff_ffff, isIPv4: true)
        } else {
            self.init(high: high, low: low, isIPv4: false)
        }
    }

    /// The network this address is judged in: the first `ipv4Prefix` bits of an IPv4 address, the
    /// first `ipv6Prefix` (at most 64) of an IPv6 one.
    public func network(ipv4Prefix: Int, ipv6Prefix: Int) -> NetworkKey {
        if isIPv4 {
            let mask: UInt64 = ipv4Prefix <= 0 ? 0 : (0xffff_ffff << UInt64(32 - min(ipv4Prefix, 32))) & 0xffff_ffff
            return NetworkKey(bits: low & mask, length: UInt8(clamping: ipv4Prefix), isIPv4: true)
        }
        let length = min(max(ipv6Prefix, 0), 64)
        let mask: UInt64 = length == 0 ? 0 : ~0 << UInt64(64 - length)
        return NetworkKey(bits: high & mask, length: UInt8(length), isIPv4: false)
    }

    /// Four decimal octets, each 0...255 in at most three digits.
    private static func ipv4(_ text: UnsafeRawBufferPointer.SubSequence) -> UInt32? {
        guard text.count >= 7, text.count <= 15 else { return nil }
        var value: UInt32 = 0, octet: UInt32 = 0, digits = 0, dots = 0
        for byte in text {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, dots < 3 else { return nil }
                value = value << 8 | octet
                octet = 0
                digits = 0
                dots += 1
            } else {
                let digit = byte &- UInt8(ascii: "0")
                guard digit < 10, digits < 3 else { return nil }
                octet = octet * 10 + UInt32(digit)
                guard octet <= 255 else { return nil }
                digits += 1
            }
        }
        guard dots == 3, digits > 0 else { return nil }
        return value << 8 | octet
    }
}

/// A network the feed judges as one: an IPv4 /24 or an IPv6 /64 by default, at most 64 bits long, so
/// it fits in one word.
///
///     key.prefix.description   // "203.0.113.0/24"
public struct NetworkKey: Hashable, Sendable, CustomStringConvertible {
    /// The network's bits, left-aligned in the IPv6 high half, or in the low 32 bits for IPv4.
    public var bits: UInt64
    public var length: UInt8
    public var isIPv4: Bool

    public init(bits: UInt64, length: UInt8, isIPv4: Bool) {
        self.bits = bits
        self.length = length
        self.isIPv4 = isIPv4
    }

    /// The network as the ban sinks take it.
    public var prefix: AddressPrefix {
        var bytes = [UInt8](repeating: 0, count: 16)
        if isIPv4 {
            bytes[10] = 0xff
            bytes[11] = 0xff
            for index in 0..<4 { bytes[12 + index] = UInt8(truncatingIfNeeded: bits >> UInt64(24 - 8 * index)) }
        } else {
            for index in 0..<8 { bytes[index] = UInt8(truncatingIfNeeded: bits >> UInt64(56 - 8 * index)) }
        }
        // Both inputs are made here: 16 bytes and a length within the family's range.
        return AddressPrefix(containing: bytes, length: Int(length), isIPv4: isIPv4)
            ?? AddressPrefix(uncheckedBytes: bytes, length: Int(length), isIPv4: isIPv4)
    }

    public var description: String { prefix.description }
}
