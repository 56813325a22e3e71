import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// A network namespace to work in: the caller's own, or one named by `ip netns add NAME`.
///
/// Sockets (netlink for nftables and XDP queries) belong to the namespace of the thread that
/// opened them, so work for a named namespace runs inside `perform`, which moves the calling
/// thread there and back. Only the network namespace changes: mounts, and so the host's
/// bpffs at /sys/fs/bpf, stay as they are.
///
///     let lab = try NetworkNamespace(named: "gw-lab")
///     let index = try lab.perform { try NetworkInterface.index(of: "veth0") }
public struct NetworkNamespace: Sendable, Equatable, CustomStringConvertible {
    /// Where `ip netns add` bind-mounts named namespaces.
    public static let namedNamespaceDirectory = "/run/netns"

    /// The namespace's name, or nil for the one this process started in.
    public let name: String?

    public static let current = NetworkNamespace(uncheckedName: nil)

    private init(uncheckedName: String?) {
        self.name = uncheckedName
    }

    /// A named namespace; fails with a message naming it if it does not exist.
    public init(named name: String) throws {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw KernelError(operation: "network namespace '\(name)' is not a valid name")
        }
        var status = stat()
        guard stat("\(Self.namedNamespaceDirectory)/\(name)", &status) == 0 else {
            throw KernelError(operation: "network namespace '\(name)' does not exist (no \(Self.namedNamespaceDirectory)/\(name))")
        }
        self.name = name
    }

    /// `nil` means the current namespace.
    public init(optionalName: String?) throws {
        if let optionalName { try self.init(named: optionalName) } else { self = .current }
    }

    public var description: String { name.map { "network namespace '\($0)'" } ?? "the current network namespace" }

    /// Runs `body` on the calling thread with the thread inside this namespace, then returns.
    /// `body` must not suspend: a Swift task may resume on another thread.
    public func perform<T>(_ body: () throws -> T) throws -> T {
        guard let name else { return try body() }

        let original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard original >= 0 else { throw KernelError.fromErrno("open the current network namespace") }
        defer { close(original) }
        let target = open("\(Self.namedNamespaceDirectory)/\(name)", O_RDONLY | O_CLOEXEC)
        guard target >= 0 else { throw KernelError.fromErrno("open \(self)") }
        defer { close(target) }

        guard setns(target, CLONE_NEWNET) == 0 else { throw KernelError.fromErrno("enter \(self)") }
        defer {
            // Failing to return would leave this thread in the wrong namespace for good.
            if setns(original, CLONE_NEWNET) != 0 {
                fatalError("could not return from \(self) to the original network namespace")
            }
        }
        return try body()
    }
}
