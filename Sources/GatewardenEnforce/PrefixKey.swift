import GatewardenCore

/// A prefix packed into two words and a length: what `ViolationTracker` hashes a million times an
/// interval, where an `AddressPrefix` (a heap array of 16 bytes) would cost an allocation each.
///
/// The address is the 16-byte IPv4-mapped form the XDP maps use, big-endian in `high` and `low`.
///
///     let key = PrefixKey(try AddressPrefix("203.0.113.0/24"))
///     key.mappedLength   // 120
///     key.prefix         // 203.0.113.0/24
public struct PrefixKey: Hashable, Sendable, CustomStringConvertible {
    /// Bytes 0..<8 of the mapped address, big-endian.
    public let high: UInt64
    /// Bytes 8..<16 of the mapped address, big-endian.
    public let low: UInt64
    /// The prefix length over the 128-bit mapped form (IPv4 /24 is 120).
    public let mappedLength: UInt8
    /// Whether the prefix is written as IPv4. Kept, not derived: `::ffff:0:0/96` is an IPv6
    /// prefix that covers exactly what `0.0.0.0/0` does.
    public let isIPv4: Bool

    /// The key of a mapped address and length; bits past the length are cleared, a length past
    /// 128 is taken as 128, so any input names a well-formed prefix. Without `isIPv4`, a prefix
    /// inside ::ffff:0:0/96 is IPv4, as the XDP maps write IPv4.
    public init(high: UInt64, low: UInt64, mappedLength: Int, isIPv4: Bool? = nil) {
        let length = min(max(mappedLength, 0), 128)
        self.mappedLength = UInt8(length)
        self.high = high & Self.mask(bits: min(length, 64))
        self.low = low & Self.mask(bits: max(length - 64, 0))
        let mapped = self.high == 0 && self.low >> 32 == 0xffff && length >= 96
        self.isIPv4 = mapped && (isIPv4 ?? true)
    }

    public init(_ prefix: AddressPrefix) {
        let (high, low) = prefix.bytes.withUnsafeBytes { raw -> (UInt64, UInt64) in
            // AddressPrefix always holds 16 bytes; anything else would be a bug there, not a crash here.
            guard raw.count >= 16 else { return (0, 0) }
            return (UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self)),
                    UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
        self.init(high: high, low: low, mappedLength: prefix.mappedLength, isIPv4: prefix.isIPv4)
    }

    /// The prefix this key stands for.
    public var prefix: AddressPrefix {
        let bytes = (0..<16).map { index -> UInt8 in
            let word = index < 8 ? high : low
            return UInt8(truncatingIfNeeded: word >> (8 * (7 - index % 8)))
        }
        return AddressPrefix(uncheckedBytes: bytes, length: Int(mappedLength) - (isIPv4 ? 96 : 0), isIPv4: isIPv4)
    }

    public var description: String { prefix.description }

    /// A word with its `bits` most significant bits set.
    private static func mask(bits: Int) -> UInt64 {
        bits >= 64 ? .max : bits <= 0 ? 0 : ~(UInt64.max >> UInt64(bits))
    }
}
