import CLibBPF

/// Runs a loaded XDP program on a packet in the kernel (BPF_PROG_TEST_RUN): the real program
/// and maps, no interface needed. Tests use it for verdicts; the benchmark for ns per packet.
///
///     let run = try ProgramTestRun(programFD: fd).run(packet: frame)
///     run.action == .drop
public struct ProgramTestRun: Sendable {
    /// XDP return codes.
    public enum Action: UInt32, Sendable {
        case aborted = 0, drop, pass, tx, redirect
    }

    public struct Result: Sendable {
        public var action: Action?
        public var returnValue: UInt32
        /// Mean nanoseconds per run, as the kernel measured it over `repeat` runs.
        public var nanosecondsPerRun: UInt32
        /// The frame as the last run left it.
        public var packet: [UInt8]
    }

    public let programFD: Int32

    public init(programFD: Int32) {
        self.programFD = programFD
    }

    /// Runs the program `repeatCount` times on `packet` (an Ethernet frame).
    public func run(packet: [UInt8], repeatCount: UInt32 = 1) throws -> Result {
        var input = packet
        // XDP test runs may grow the frame (headroom/tailroom); give the output room.
        var output = [UInt8](repeating: 0, count: packet.count + 512)
        return try input.withUnsafeMutableBytes { inBytes in
            try output.withUnsafeMutableBytes { outBytes in
                try withZeroed(bpf_test_run_opts.self) { options in
                    options.pointee.sz = MemoryLayout<bpf_test_run_opts>.size
                    options.pointee.data_in = UnsafeRawPointer(inBytes.baseAddress)
                    options.pointee.data_size_in = UInt32(inBytes.count)
                    options.pointee.data_out = outBytes.baseAddress
                    options.pointee.data_size_out = UInt32(outBytes.count)
                    options.pointee.`repeat` = Int32(bitPattern: repeatCount)
                    let result = bpf_prog_test_run_opts(programFD, options)
                    guard result == 0 else { throw KernelError.fromReturnCode(result, "BPF_PROG_TEST_RUN") }
                    return Result(action: Action(rawValue: options.pointee.retval),
                                  returnValue: options.pointee.retval,
                                  nanosecondsPerRun: options.pointee.duration,
                                  packet: Array(outBytes.prefix(Int(options.pointee.data_size_out))))
                }
            }
        }
    }
}
