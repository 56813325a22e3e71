import CLibBPF
#if canImport(Glibc)
import Glibc
#endif

/// An ELF BPF object opened from memory and loaded into the kernel through libbpf.
///
/// Maps given a pin path are reused if already pinned (libbpf checks their type and sizes,
/// so a layout change is refused rather than misread) and pinned if new:
///
///     let object = try BPFObject(elf: bytes, name: "gatewarden_xdp")
///     try object.pinMaps(at: layout.map)
///     try object.load()
///     let program = try object.programDescriptor(named: "gatewarden_xdp")
public final class BPFObject {
    private let handle: OpaquePointer
    // libbpf keeps pointers into the ELF buffer until the object is closed.
    private let elf: UnsafeMutableRawBufferPointer

    public init(elf bytes: [UInt8], name: String) throws {
        LibBPFLog.shared.install()
        let elf = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
        elf.copyBytes(from: bytes)

        let opened = name.withCString { cName in
            withZeroed(bpf_object_open_opts.self) { options -> OpaquePointer? in
                options.pointee.sz = MemoryLayout<bpf_object_open_opts>.size
                options.pointee.object_name = cName
                return bpf_object__open_mem(elf.baseAddress, elf.count, options)
            }
        }
        guard let opened else {
            elf.deallocate()
            throw KernelError.fromErrno("open BPF object \(name)")
        }
        handle = opened
        self.elf = elf
    }

    deinit {
        bpf_object__close(handle)
        elf.deallocate()
    }

    /// The names of the object's maps, in ELF order (`.rodata`, `.bss` and the like excluded).
    public var mapNames: [String] {
        var names: [String] = []
        var map = bpf_object__next_map(handle, nil)
        while let current = map {
            let name = String(cString: bpf_map__name(current))
            if !name.contains(".") { names.append(name) }
            map = bpf_object__next_map(handle, current)
        }
        return names
    }

    /// Gives every named map a pin path (call before `load`): `path(name)`.
    public func pinMaps(at path: (String) -> String) throws {
        for name in mapNames {
            guard let map = bpf_object__find_map_by_name(handle, name) else { continue }
            let result = bpf_map__set_pin_path(map, path(name))
            guard result == 0 else { throw KernelError.fromReturnCode(result, "set pin path of map \(name)") }
        }
    }

    /// A map's definition as it will be created (call before `load`, after any `setMaxEntries`):
    /// what libbpf compares with a pinned map before reusing it.
    public func mapDefinition(named name: String) throws -> BPFMapDefinition {
        guard let map = bpf_object__find_map_by_name(handle, name) else {
            throw KernelError(operation: "BPF object has no map \(name)")
        }
        return BPFMapDefinition(type: bpf_map__type(map).rawValue, keySize: Int(bpf_map__key_size(map)),
                                valueSize: Int(bpf_map__value_size(map)), maxEntries: bpf_map__max_entries(map),
                                flags: bpf_map__map_flags(map))
    }

    /// Sets where a map is pinned (call before `load`): reused from there if pinned, pinned there if new.
    public func setPinPath(_ path: String, ofMap name: String) throws {
        guard let map = bpf_object__find_map_by_name(handle, name) else {
            throw KernelError(operation: "BPF object has no map \(name)")
        }
        let result = bpf_map__set_pin_path(map, path)
        guard result == 0 else { throw KernelError.fromReturnCode(result, "set pin path of map \(name)") }
    }

    /// Sets a map's capacity (call before `load`; a pinned map keeps the capacity it has).
    public func setMaxEntries(_ entries: UInt32, ofMap name: String) throws {
        guard let map = bpf_object__find_map_by_name(handle, name) else {
            throw KernelError(operation: "BPF object has no map \(name)")
        }
        let result = bpf_map__set_max_entries(map, entries)
        guard result == 0 else { throw KernelError.fromReturnCode(result, "set capacity of map \(name)") }
    }

    /// Loads programs and maps into the kernel; a verifier rejection carries the verifier's log.
    public func load() throws {
        let (result, log) = LibBPFLog.shared.capturing { bpf_object__load(handle) }
        guard result == 0 else {
            throw KernelError(operation: "load BPF object", errno: -result, detail: LibBPFLog.tail(log))
        }
    }

    /// The loaded program's descriptor (owned by the object: valid while it lives).
    public func programDescriptor(named name: String) throws -> Int32 {
        guard let program = bpf_object__find_program_by_name(handle, name) else {
            throw KernelError(operation: "BPF object has no program \(name)")
        }
        let fd = bpf_program__fd(program)
        guard fd >= 0 else { throw KernelError(operation: "program \(name) is not loaded") }
        return fd
    }

    /// The loaded map's descriptor (owned by the object: valid while it lives).
    public func mapDescriptor(named name: String) throws -> Int32 {
        guard let map = bpf_object__find_map_by_name(handle, name) else {
            throw KernelError(operation: "BPF object has no map \(name)")
        }
        let fd = bpf_map__fd(map)
        guard fd >= 0 else { throw KernelError(operation: "map \(name) is not loaded") }
        return fd
    }
}
