import CGatewardenABI
import CLibBPF
import GatewardenCore
import GatewardenKernel
#if canImport(Glibc)
import Glibc
#endif

/// What the loader recorded at attach: mode, interface, time, program digest, ABI.
extension XDPMaps {
    public func loaderInfo() throws -> gw_loader_info? {
        try Self.readRecord(loader)
    }

    /// Copied from the map's bytes rather than read through `BPFMap.value(at:as:)`: Swift 6.3's
    /// cross-module optimization of a release build crashes (signal 6) deserializing, in another module,
    /// the BitwiseCopyable conformance that generic read needs for this imported C struct.
    private static func readRecord(_ loader: BPFMap) throws -> gw_loader_info? {
        guard let bytes = try loader.rawValue(at: 0), bytes.count >= MemoryLayout<gw_loader_info>.size else { return nil }
        var info = gw_loader_info()
        withUnsafeMutableBytes(of: &info) { $0.copyBytes(from: bytes.prefix($0.count)) }
        return info.abi_version == 0 ? nil : info
    }

    /// Records the attach for status and the exporter; `requested` is the raw `gw_xdp_mode` asked for.
    public func recordAttach(mode: XDPMode, requested: UInt32, interface: String, interfaceIndex: UInt32,
                             wallClockNanoseconds: UInt64, programDigest: UInt64) throws {
        var record = gw_loader_info()
        record.program_digest = programDigest
        record.abi_version = UInt32(GW_ABI_VERSION)
        record.xdp_mode = mode.abiValue
        record.requested_mode = requested
        record.ifindex = interfaceIndex
        record.attached_unix_ns = wallClockNanoseconds
        withUnsafeMutableBytes(of: &record.ifname) { buffer in
            buffer.copyBytes(from: interface.utf8.prefix(buffer.count - 1))
        }
        try loader.update(record, at: UInt32(0))
    }
}
