import CGatewardenABI
import GatewardenCore
import GatewardenKernel

/// Prefixes as keys of the XDP program's LPM trie maps (`struct gw_lpm_key`).
extension AddressPrefix {
    /// The key of this prefix in an LPM trie map.
    public var lpmKey: gw_lpm_key {
        var key = gw_lpm_key()
        key.prefixlen = UInt32(mappedLength)
        withUnsafeMutableBytes(of: &key.addr) { $0.copyBytes(from: bytes) }
        return key
    }

    /// The prefix an LPM trie key stands for.
    public init(lpmKey key: gw_lpm_key) {
        let bytes = withUnsafeBytes(of: key.addr) { Array($0) }
        let isIPv4 = bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff && key.prefixlen >= 96
        self.init(uncheckedBytes: bytes, length: Int(key.prefixlen) - (isIPv4 ? 96 : 0), isIPv4: isIPv4)
    }
}
