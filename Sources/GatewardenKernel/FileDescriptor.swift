#if canImport(Glibc)
import Glibc
#endif

/// An owned file descriptor, closed when the value is released.
///
/// BPF objects (maps, links, programs) and namespace handles are all file descriptors;
/// owning them in one type means no path forgets to close one.
public final class FileDescriptor: @unchecked Sendable {
    public let rawValue: Int32

    public init(owning rawValue: Int32) {
        self.rawValue = rawValue
    }

    deinit {
        close(rawValue)
    }
}
