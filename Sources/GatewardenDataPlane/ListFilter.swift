import CGatewardenABI
import GatewardenCore
import GatewardenKernel

/// The user-space half of `gw_list_filter`: which of the 65536 filter bits the allow and block
/// entries may cover. Pure, so it is unit-tested without a kernel.
///
/// The program computes the same index for a source (`list_filter_index` in gatewarden_xdp.c):
/// an IPv4 address's top 16 bits, or for IPv6 the XOR of its first two 16-bit groups.
public enum ListFilter {
    public static let words = Int(GW_LIST_FILTER_WORDS)

    /// The filter words (64 bits each) for these prefixes.
    public static func words(for prefixes: [AddressPrefix]) -> [UInt64] {
        var words = [UInt64](repeating: 0, count: Self.words)
        func set(_ index: Int) { words[index / 64] |= 1 << UInt64(index % 64) }
        for prefix in prefixes {
            if prefix.isIPv4 {
                let top = Int(prefix.bytes[12]) << 8 | Int(prefix.bytes[13])
                if prefix.length >= 16 {
                    set(top)
                } else {
                    // Every /16 inside a shorter prefix.
                    let span = 1 << (16 - prefix.length)
                    for offset in 0..<span { set(top + offset) }
                }
            } else if prefix.length >= 32 {
                set(index(ofIPv6: prefix.bytes))
            } else {
                // Shorter than the folded bits: any index is possible.
                return [UInt64](repeating: .max, count: Self.words)
            }
        }
        return words
    }

    static func index(ofIPv6 bytes: [UInt8]) -> Int {
        (Int(bytes[0]) << 8 | Int(bytes[1])) ^ (Int(bytes[2]) << 8 | Int(bytes[3]))
    }
}
