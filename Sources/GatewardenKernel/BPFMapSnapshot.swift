import CLibBPF
#if canImport(Glibc)
import Glibc
#endif

/// A map's entries at one moment, as raw bytes, to put back after a change that failed half-way.
///
/// Only for maps that user space alone writes (configuration, lists): restoring one the program also
/// writes (counters, buckets) would undo what it did since. Per-CPU maps are refused.
///
///     let saved = try BPFMapSnapshot(of: config)
///     ...writes that fail...
///     try saved.restore()      // rewrites only what differs, removes what was added
public struct BPFMapSnapshot {
    public let map: BPFMap
    /// Keys and values, each packed at the map's key and value size.
    private let keys: [UInt8]
    private let values: [UInt8]

    public var count: Int { keys.count / map.info.keySize }

    public init(of map: BPFMap) throws {
        guard !map.info.isPerCPU else { throw KernelError(operation: "snapshot map \(map.info.name): per-CPU maps are not supported") }
        self.map = map
        (keys, values) = try Self.entries(of: map)
    }

    /// Puts the map back as it was: entries added since are removed (array slots cannot be, and
    /// are only ever rewritten), changed ones rewritten. Touches nothing that did not change.
    public func restore() throws {
        let keySize = map.info.keySize, valueSize = map.info.valueSize
        let isArray = map.info.type == BPF_MAP_TYPE_ARRAY.rawValue
        let (currentKeys, currentValues) = try Self.entries(of: map)
        var current: [ArraySlice<UInt8>: ArraySlice<UInt8>] = [:]
        for index in 0..<(currentKeys.count / keySize) {
            current[currentKeys[index * keySize..<(index + 1) * keySize]] = currentValues[index * valueSize..<(index + 1) * valueSize]
        }
        var saved = Set<ArraySlice<UInt8>>()
        for index in 0..<count {
            let key = keys[index * keySize..<(index + 1) * keySize]
            let value = values[index * valueSize..<(index + 1) * valueSize]
            saved.insert(key)
            guard current[key] != value else { continue }
            var keyBytes = Array(key), valueBytes = Array(value)
            guard bpf_map_update_elem(map.descriptor.rawValue, &keyBytes, &valueBytes, UInt64(BPF_ANY)) == 0 else {
                throw KernelError.fromErrno("restore map \(map.info.name)")
            }
        }
        guard !isArray else { return }
        for key in current.keys where !saved.contains(key) {
            var keyBytes = Array(key)
            guard bpf_map_delete_elem(map.descriptor.rawValue, &keyBytes) == 0 || errno == ENOENT else {
                throw KernelError.fromErrno("restore map \(map.info.name)")
            }
        }
    }

    /// Every entry: by batches where the map has batch lookups (arrays, hashes), else key by key
    /// (LPM tries).
    private static func entries(of map: BPFMap) throws -> (keys: [UInt8], values: [UInt8]) {
        if let batched = try batchedEntries(of: map) { return batched }
        let fd = map.descriptor.rawValue
        var keys: [UInt8] = [], values: [UInt8] = []
        var key = [UInt8](repeating: 0, count: map.info.keySize), next = key
        var value = [UInt8](repeating: 0, count: map.info.valueSize)
        var first = true
        while (first ? bpf_map_get_next_key(fd, nil, &next) : bpf_map_get_next_key(fd, &key, &next)) == 0 {
            first = false
            key = next
            if bpf_map_lookup_elem(fd, &next, &value) != 0 {
                if errno == ENOENT { continue }
                throw KernelError.fromErrno("read map \(map.info.name)")
            }
            keys += next
            values += value
        }
        guard errno == ENOENT else { throw KernelError.fromErrno("list keys of map \(map.info.name)") }
        return (keys, values)
    }

    /// nil when the map type has no batch lookup.
    private static func batchedEntries(of map: BPFMap) throws -> (keys: [UInt8], values: [UInt8])? {
        let batchSize = 4096
        let keySize = map.info.keySize, valueSize = map.info.valueSize
        var keyBuffer = [UInt8](repeating: 0, count: batchSize * keySize)
        var valueBuffer = [UInt8](repeating: 0, count: batchSize * valueSize)
        // The batch token is opaque (a 4-byte index for arrays and hashes); room for any key.
        var inToken = [UInt8](repeating: 0, count: max(keySize, 8)), outToken = inToken
        var keys: [UInt8] = [], values: [UInt8] = []
        var first = true
        return try withZeroed(bpf_map_batch_opts.self) { options in
            options.pointee.sz = MemoryLayout<bpf_map_batch_opts>.size
            while true {
                var count = UInt32(batchSize)
                let result = first
                    ? bpf_map_lookup_batch(map.descriptor.rawValue, nil, &outToken, &keyBuffer, &valueBuffer, &count, options)
                    : bpf_map_lookup_batch(map.descriptor.rawValue, &inToken, &outToken, &keyBuffer, &valueBuffer, &count, options)
                let finished = result != 0 && errno == ENOENT
                if result != 0 && !finished {
                    if first { return nil }
                    throw KernelError.fromErrno("batch lookup in map \(map.info.name)")
                }
                keys += keyBuffer.prefix(Int(count) * keySize)
                values += valueBuffer.prefix(Int(count) * valueSize)
                if finished { return (keys, values) }
                inToken = outToken
                first = false
            }
        }
    }
}
