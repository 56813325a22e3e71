#if canImport(Glibc)
import Glibc
#endif

/// A kernel operation that failed, with what was being done and the kernel's reason.
///
///     throw KernelError(operation: "attach XDP to eth0", errno: EBUSY)
///     // "attach XDP to eth0: Device or resource busy (EBUSY)"
public struct KernelError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let errno: Int32?
    public let detail: String?

    public init(operation: String, errno: Int32? = nil, detail: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    /// Reads the thread's `errno` now; call right after the failing call.
    public static func fromErrno(_ operation: String) -> KernelError {
        KernelError(operation: operation, errno: Glibc.errno)
    }

    /// For libbpf calls that return a negative errno.
    public static func fromReturnCode(_ code: Int32, _ operation: String) -> KernelError {
        KernelError(operation: operation, errno: code < 0 ? -code : Glibc.errno)
    }

    public var description: String {
        var text = operation
        if let errno {
            text += ": " + String(cString: strerror(errno))
        }
        if let detail, !detail.isEmpty {
            text += "\n" + detail
        }
        return text
    }
}
