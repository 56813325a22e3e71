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
        let info = try loader.value(at: UInt32(0), as: gw_loader_info.self)
        return info.flatMap { $0.abi_version == 0 ? nil : $0 }
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
