/// Runs `body` with a pointer to a `T` whose every byte, padding included, is zero.
///
/// libbpf's `*_opts` structs must have zero bytes past the fields the library knows
/// (`OPTS_VALID`), and the kernel checks the tails of info structs the same way. Swift's
/// `T()` zeroes fields but not padding, which optimised builds leave undefined (seen as
/// EINVAL from `bpf_xdp_query` in release builds only). Set fields through
/// `pointer.pointee.field = ...`, which writes that field alone.
///
///     let id = try withZeroed(bpf_xdp_query_opts.self) { options in
///         options.pointee.sz = MemoryLayout<bpf_xdp_query_opts>.size
///         return bpf_xdp_query(ifindex, 0, options)
///     }
package func withZeroed<T, R>(_: T.Type, _ body: (UnsafeMutablePointer<T>) throws -> R) rethrows -> R {
    try withUnsafeTemporaryAllocation(byteCount: MemoryLayout<T>.size, alignment: MemoryLayout<T>.alignment) { raw in
        raw.initializeMemory(as: UInt8.self, repeating: 0)
        return try body(raw.baseAddress!.assumingMemoryBound(to: T.self))
    }
}
