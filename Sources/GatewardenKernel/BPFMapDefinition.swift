import CLibBPF
#if canImport(Glibc)
import Glibc
#endif

/// The shape of a BPF map: what libbpf compares before it reuses a pinned map, and refuses to
/// reuse on any difference. Read from an object before it is loaded (`BPFObject.mapDefinition`)
/// or from a map in the kernel (`BPFMap.Info.definition`).
///
///     let wanted = try object.mapDefinition(named: "gw_stats")
///     let pinned = try BPFMap(pinnedAt: layout.map("gw_stats")).info.definition
///     if pinned != wanted { print("gw_stats: \(pinned) pinned, \(wanted) wanted") }
public struct BPFMapDefinition: Sendable, Equatable, CustomStringConvertible {
    public var type: UInt32
    public var keySize: Int
    public var valueSize: Int
    public var maxEntries: UInt32
    public var flags: UInt32

    public init(type: UInt32, keySize: Int, valueSize: Int, maxEntries: UInt32, flags: UInt32) {
        self.type = type
        self.keySize = keySize
        self.valueSize = valueSize
        self.maxEntries = maxEntries
        self.flags = flags
    }

    public var description: String {
        let typeName = libbpf_bpf_map_type_str(bpf_map_type(rawValue: type)).map { String(cString: $0) } ?? "type \(type)"
        var text = "\(typeName), key \(keySize) B, value \(valueSize) B, \(maxEntries) entries"
        if flags != 0 { text += ", flags 0x\(String(flags, radix: 16))" }
        return text
    }
}

/// Pin operations that libbpf does not offer.
public enum BPFPin {
    /// Moves a pin over another in one step (bpffs renames replace the target), so readers of
    /// `destination` see the old object or the new one, never none.
    public static func move(_ source: String, over destination: String) throws {
        guard rename(source, destination) == 0 else {
            throw KernelError.fromErrno("move pin \(source) to \(destination)")
        }
    }

    /// Removes a pin if present; true if one was removed.
    @discardableResult
    public static func remove(_ path: String) throws -> Bool {
        if unlink(path) == 0 { return true }
        if errno == ENOENT { return false }
        throw KernelError.fromErrno("remove pin \(path)")
    }
}
