import CLibBPF
#if canImport(Glibc)
import Glibc
#endif

/// A BPF map reached through a file descriptor: a pinned path, or a map of a loaded object.
///
/// Keys and values are the C structs of `gatewarden_abi.h`, read as raw bytes of their Swift
/// imports. Per-CPU maps return one value per possible CPU; callers sum them.
///
///     let stats = try BPFMap(pinnedAt: layout.map("gw_stats"))
///     let perCPU = try stats.perCPUValues(at: UInt32(0), as: gw_counter.self)
public final class BPFMap: @unchecked Sendable {
    /// What the kernel says about the map.
    public struct Info: Sendable, Equatable {
        public var id: UInt32
        public var name: String
        public var type: UInt32
        public var keySize: Int
        public var valueSize: Int
        public var maxEntries: UInt32
        public var flags: UInt32 = 0

        /// What libbpf compares before it reuses a pinned map.
        public var definition: BPFMapDefinition {
            BPFMapDefinition(type: type, keySize: keySize, valueSize: valueSize, maxEntries: maxEntries, flags: flags)
        }

        public var isPerCPU: Bool {
            [BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH]
                .map(\.rawValue).contains(type)
        }
    }

    public let descriptor: FileDescriptor
    public let info: Info

    /// Opens a pinned map.
    public convenience init(pinnedAt path: String) throws {
        let fd = bpf_obj_get(path)
        guard fd >= 0 else { throw KernelError.fromErrno("open pinned map \(path)") }
        try self.init(descriptor: FileDescriptor(owning: fd))
    }

    /// Takes a duplicate of a descriptor owned elsewhere (for example by a `BPFObject`).
    public convenience init(borrowing fd: Int32) throws {
        let duplicate = dup(fd)
        guard duplicate >= 0 else { throw KernelError.fromErrno("duplicate map descriptor") }
        try self.init(descriptor: FileDescriptor(owning: duplicate))
    }

    public init(descriptor: FileDescriptor) throws {
        self.descriptor = descriptor
        info = try withZeroed(bpf_map_info.self) { raw in
            var length = UInt32(MemoryLayout<bpf_map_info>.size)
            let result = bpf_obj_get_info_by_fd(descriptor.rawValue, raw, &length)
            guard result == 0 else { throw KernelError.fromReturnCode(result, "read map information") }
            let name = withUnsafeBytes(of: raw.pointee.name) {
                String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            return Info(id: raw.pointee.id, name: name, type: raw.pointee.type, keySize: Int(raw.pointee.key_size),
                        valueSize: Int(raw.pointee.value_size), maxEntries: raw.pointee.max_entries,
                        flags: raw.pointee.map_flags)
        }
    }

    /// The kernel's number of possible CPUs: the length of every per-CPU value array.
    public static let possibleCPUs: Int = Int(max(libbpf_num_possible_cpus(), 1))

    /// Per-CPU values are laid out at an 8-byte stride.
    private var perCPUStride: Int { (info.valueSize + 7) & ~7 }

    private func checkSizes<Key: BitwiseCopyable, Value: BitwiseCopyable>(_: Key.Type, _: Value.Type) throws {
        guard MemoryLayout<Key>.size == info.keySize, MemoryLayout<Value>.size == info.valueSize else {
            throw KernelError(operation: "map \(info.name) has key/value sizes \(info.keySize)/\(info.valueSize), "
                + "expected \(MemoryLayout<Key>.size)/\(MemoryLayout<Value>.size): ABI mismatch")
        }
    }

    /// The value at `key`, or nil if absent (not for per-CPU maps).
    public func value<Key: BitwiseCopyable, Value: BitwiseCopyable>(at key: Key, as _: Value.Type) throws -> Value? {
        try checkSizes(Key.self, Value.self)
        var key = key
        let value = UnsafeMutablePointer<Value>.allocate(capacity: 1)
        defer { value.deallocate() }
        let result = bpf_map_lookup_elem(descriptor.rawValue, &key, value)
        if result != 0 {
            if errno == ENOENT { return nil }
            throw KernelError.fromErrno("look up map \(info.name)")
        }
        return value.pointee
    }

    /// One value per possible CPU at `key`, or nil if absent.
    public func perCPUValues<Key: BitwiseCopyable, Value: BitwiseCopyable>(at key: Key, as _: Value.Type) throws -> [Value]? {
        try checkSizes(Key.self, Value.self)
        var key = key
        let stride = perCPUStride
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: stride * Self.possibleCPUs, alignment: 8)
        defer { buffer.deallocate() }
        let result = bpf_map_lookup_elem(descriptor.rawValue, &key, buffer.baseAddress)
        if result != 0 {
            if errno == ENOENT { return nil }
            throw KernelError.fromErrno("look up map \(info.name)")
        }
        return (0..<Self.possibleCPUs).map { buffer.load(fromByteOffset: $0 * stride, as: Value.self) }
    }

    /// Writes `value` at `key` (not for per-CPU maps).
    public func update<Key: BitwiseCopyable, Value: BitwiseCopyable>(_ value: Value, at key: Key) throws {
        try checkSizes(Key.self, Value.self)
        var key = key
        var value = value
        let result = bpf_map_update_elem(descriptor.rawValue, &key, &value, UInt64(BPF_ANY))
        guard result == 0 else { throw KernelError.fromReturnCode(result, "update map \(info.name)") }
    }

    /// Visits every entry with batched lookups (one syscall per `batchSize` entries).
    /// For per-CPU maps `body` gets one value per CPU; otherwise a single value.
    public func forEachEntry<Key: BitwiseCopyable, Value: BitwiseCopyable>(
        keyType _: Key.Type, valueType _: Value.Type, batchSize: Int = 4096,
        _ body: (Key, UnsafeBufferPointer<Value>) throws -> Void
    ) throws {
        try checkSizes(Key.self, Value.self)
        let valuesPerEntry = info.isPerCPU ? Self.possibleCPUs : 1
        let valueStride = info.isPerCPU ? perCPUStride : MemoryLayout<Value>.stride
        let keys = UnsafeMutableRawBufferPointer.allocate(byteCount: batchSize * info.keySize, alignment: 8)
        let values = UnsafeMutableRawBufferPointer.allocate(byteCount: batchSize * valuesPerEntry * valueStride, alignment: 8)
        // The batch token is opaque; hash maps use a 4-byte bucket index. Make room for any key.
        let tokens = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * max(info.keySize, 8), alignment: 8)
        defer { keys.deallocate(); values.deallocate(); tokens.deallocate() }
        let inToken = tokens.baseAddress!
        let outToken = tokens.baseAddress! + max(info.keySize, 8)
        let scratch = UnsafeMutablePointer<Value>.allocate(capacity: valuesPerEntry)
        defer { scratch.deallocate() }

        let options = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<bpf_map_batch_opts>.size,
                                                       alignment: MemoryLayout<bpf_map_batch_opts>.alignment)
        defer { options.deallocate() }
        options.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<bpf_map_batch_opts>.size)
        let batchOptions = options.assumingMemoryBound(to: bpf_map_batch_opts.self)
        batchOptions.pointee.sz = MemoryLayout<bpf_map_batch_opts>.size
        var first = true
        while true {
            var count = UInt32(batchSize)
            let result = bpf_map_lookup_batch(descriptor.rawValue, first ? nil : inToken, outToken,
                                              keys.baseAddress, values.baseAddress, &count, batchOptions)
            let finished = result != 0 && errno == ENOENT
            if result != 0 && !finished { throw KernelError.fromErrno("batch lookup in map \(info.name)") }
            for entry in 0..<Int(count) {
                let key = keys.load(fromByteOffset: entry * info.keySize, as: Key.self)
                let base = entry * valuesPerEntry * valueStride
                for cpu in 0..<valuesPerEntry {
                    scratch[cpu] = values.load(fromByteOffset: base + cpu * valueStride, as: Value.self)
                }
                try body(key, UnsafeBufferPointer(start: scratch, count: valuesPerEntry))
            }
            if finished { return }
            inToken.copyMemory(from: outToken, byteCount: max(info.keySize, 8))
            first = false
        }
    }
}

extension BPFMap {
    /// Writes every key `0..<count` of an array map in one batched syscall.
    public func updateAll<Value: BitwiseCopyable>(count: Int, value: (Int) -> Value) throws {
        guard MemoryLayout<UInt32>.size == info.keySize, MemoryLayout<Value>.size == info.valueSize else {
            throw KernelError(operation: "map \(info.name): updateAll needs 4-byte keys and \(info.valueSize)-byte values")
        }
        var keys = (0..<count).map { UInt32($0) }
        var values = (0..<count).map(value)
        var written = UInt32(count)
        let result = withZeroed(bpf_map_batch_opts.self) { options in
            options.pointee.sz = MemoryLayout<bpf_map_batch_opts>.size
            options.pointee.elem_flags = UInt64(BPF_ANY)
            return bpf_map_update_batch(descriptor.rawValue, &keys, &values, &written, options)
        }
        guard result == 0, written == UInt32(count) else {
            throw KernelError.fromReturnCode(result, "update map \(info.name) (\(written) of \(count) entries written)")
        }
    }
}

extension BPFMap {
    /// Removes `key`; returns false if it was absent.
    @discardableResult
    public func delete<Key: BitwiseCopyable>(_ key: Key) throws -> Bool {
        guard MemoryLayout<Key>.size == info.keySize else {
            throw KernelError(operation: "map \(info.name): key size \(info.keySize), not \(MemoryLayout<Key>.size)")
        }
        var key = key
        if bpf_map_delete_elem(descriptor.rawValue, &key) == 0 { return true }
        if errno == ENOENT { return false }
        throw KernelError.fromErrno("delete from map \(info.name)")
    }

    /// Every key, by `bpf_map_get_next_key` (for maps without batch lookups, such as LPM tries).
    public func keys<Key: BitwiseCopyable>(as _: Key.Type) throws -> [Key] {
        guard MemoryLayout<Key>.size == info.keySize else {
            throw KernelError(operation: "map \(info.name): key size \(info.keySize), not \(MemoryLayout<Key>.size)")
        }
        var keys: [Key] = []
        let current = UnsafeMutablePointer<Key>.allocate(capacity: 1)
        let next = UnsafeMutablePointer<Key>.allocate(capacity: 1)
        defer { current.deallocate(); next.deallocate() }
        var previous: UnsafeMutablePointer<Key>? = nil
        while bpf_map_get_next_key(descriptor.rawValue, previous, next) == 0 {
            keys.append(next.pointee)
            current.pointee = next.pointee
            previous = current
        }
        guard errno == ENOENT else { throw KernelError.fromErrno("list keys of map \(info.name)") }
        return keys
    }
}

extension BPFMap {
    /// The raw bytes at array index `index` (every CPU's value, at an 8-byte stride, for per-CPU
    /// maps), or nil if absent: for reading a layout this build does not know.
    public func rawValue(at index: UInt32) throws -> [UInt8]? {
        guard info.keySize == MemoryLayout<UInt32>.size else {
            throw KernelError(operation: "map \(info.name): raw reads need 4-byte keys")
        }
        var key = index
        var bytes = [UInt8](repeating: 0, count: info.isPerCPU ? perCPUStride * Self.possibleCPUs : info.valueSize)
        let result = bytes.withUnsafeMutableBytes { bpf_map_lookup_elem(descriptor.rawValue, &key, $0.baseAddress) }
        if result != 0 {
            if errno == ENOENT { return nil }
            throw KernelError.fromErrno("look up map \(info.name)")
        }
        return bytes
    }

}

extension BPFMap {
    /// Writes every (key, value) pair with batched updates (one syscall per `batchSize` entries).
    public func update<Key: BitwiseCopyable, Value: BitwiseCopyable>(batch pairs: [(Key, Value)], batchSize: Int = 8192) throws {
        try checkBatchSizes(Key.self, Value.self)
        var start = 0
        while start < pairs.count {
            let slice = pairs[start..<min(start + batchSize, pairs.count)]
            var keys = slice.map(\.0)
            var values = slice.map(\.1)
            var written = UInt32(slice.count)
            let result = withZeroed(bpf_map_batch_opts.self) { options in
                options.pointee.sz = MemoryLayout<bpf_map_batch_opts>.size
                options.pointee.elem_flags = UInt64(BPF_ANY)
                return bpf_map_update_batch(descriptor.rawValue, &keys, &values, &written, options)
            }
            guard result == 0, written == UInt32(slice.count) else {
                throw KernelError.fromReturnCode(result, "update map \(info.name) (\(start + Int(written)) of \(pairs.count) entries written)")
            }
            start += slice.count
        }
    }

    /// Removes every key with batched deletes. Every key must be present: a missing one fails
    /// the batch (ENOENT) at that key.
    public func delete<Key: BitwiseCopyable>(batch keys: [Key], batchSize: Int = 8192) throws {
        guard MemoryLayout<Key>.size == info.keySize else {
            throw KernelError(operation: "map \(info.name): key size \(info.keySize), not \(MemoryLayout<Key>.size)")
        }
        var start = 0
        while start < keys.count {
            var slice = Array(keys[start..<min(start + batchSize, keys.count)])
            var deleted = UInt32(slice.count)
            let result = withZeroed(bpf_map_batch_opts.self) { options in
                options.pointee.sz = MemoryLayout<bpf_map_batch_opts>.size
                return bpf_map_delete_batch(descriptor.rawValue, &slice, &deleted, options)
            }
            guard result == 0, deleted == UInt32(slice.count) else {
                throw KernelError.fromReturnCode(result, "delete from map \(info.name) (\(start + Int(deleted)) of \(keys.count) entries deleted)")
            }
            start += slice.count
        }
    }

    private func checkBatchSizes<Key: BitwiseCopyable, Value: BitwiseCopyable>(_: Key.Type, _: Value.Type) throws {
        guard MemoryLayout<Key>.size == info.keySize, MemoryLayout<Value>.size == info.valueSize,
              MemoryLayout<Key>.stride == info.keySize, MemoryLayout<Value>.stride == info.valueSize else {
            throw KernelError(operation: "map \(info.name): batches need \(info.keySize)/\(info.valueSize)-byte keys/values "
                + "laid out without padding")
        }
    }

    /// Every entry, read with batched lookups.
    public func entries<Key: BitwiseCopyable, Value: BitwiseCopyable>(as _: Key.Type, _: Value.Type) throws -> [(Key, Value)] {
        var entries: [(Key, Value)] = []
        try forEachEntry(keyType: Key.self, valueType: Value.self) { key, value in entries.append((key, value[0])) }
        return entries
    }
}
