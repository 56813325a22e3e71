#if canImport(Glibc)
import Glibc
import GatewardenKernel
#endif

/// A fact Gatewarden must remember about a network namespace from one command to another, such
/// as a kernel setting it changed and must put back: one small file beside the namespace's change
/// lock (root's folder, mode 0700, never followed through a link), written and removed under that
/// lock. /run is emptied at boot, and so are the settings such a record is about.
///
///     let record = NamespaceRecord(namespace: namespace, name: "nf_conntrack_tcp_loose")
///     if try record.read() == nil { try record.write("1") }
public struct NamespaceRecord: Sendable {
    public let namespace: NetworkNamespace
    public let name: String
    public let directory: String

    public init(namespace: NetworkNamespace, name: String, directory: String = ChangeLock.defaultDirectory) {
        self.namespace = namespace
        self.name = name
        self.directory = directory
    }

    private func fileName() throws -> String {
        "netns-\(try ChangeLock.namespaceInode(namespace)).\(name)"
    }

    /// The namespace's cookie (SO_NETNS_COOKIE), never reused while the system runs: an inode
    /// number, which names the file, is reused once a namespace is deleted, so a record left by a
    /// deleted namespace must not pass for a new one's.
    private func namespaceCookie() throws -> UInt64 {
        try namespace.perform {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw KernelError.fromErrno("open a socket in \(namespace)") }
            defer { close(fd) }
            var cookie: UInt64 = 0
            var length = socklen_t(MemoryLayout<UInt64>.size)
            guard getsockopt(fd, SOL_SOCKET, Self.netnsCookieOption, &cookie, &length) == 0 else {
                throw KernelError.fromErrno("read the cookie of \(namespace)")
            }
            return cookie
        }
    }

    /// SO_NETNS_COOKIE (asm-generic/socket.h), which Swift's Glibc does not define.
    private static let netnsCookieOption: Int32 = 71

    /// The recorded value, or nil when there is none (a record another namespace left, once at
    /// this inode, is removed and counts as none).
    public func read() throws -> String? {
        guard let content = try readFile() else { return nil }
        let parts = content.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, UInt64(parts[0]) == (try namespaceCookie()) else {
            try remove()
            return nil
        }
        return String(parts[1])
    }

    private func readFile() throws -> String? {
        let folder = try ChangeLock.openPrivateDirectory(directory)
        let fd = openat(folder.rawValue, try fileName(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw KernelError.fromErrno("read \(directory)/\(try fileName())")
        }
        let file = FileDescriptor(owning: fd)
        var content: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = Glibc.read(file.rawValue, &buffer, buffer.count)
            guard count >= 0 else { throw KernelError.fromErrno("read \(directory)/\(try fileName())") }
            if count == 0 { break }
            content += buffer[..<count]
            guard content.count <= Self.maximumSize else {
                throw KernelError(operation: "read \(directory)/\(try fileName()): larger than \(Self.maximumSize) bytes")
            }
        }
        return String(decoding: content, as: UTF8.self)
    }

    /// The largest record read: a loaded policy's text with a 262,144-entry blocklist fits.
    static let maximumSize = 64 << 20

    public func write(_ value: String) throws {
        let content = "\(try namespaceCookie()) \(value)"
        let folder = try ChangeLock.openPrivateDirectory(directory)
        let fd = openat(folder.rawValue, try fileName(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw KernelError.fromErrno("write \(directory)/\(try fileName())") }
        let file = FileDescriptor(owning: fd)
        let written = content.withCString { Glibc.write(file.rawValue, $0, strlen($0)) }
        guard written == content.utf8.count else { throw KernelError.fromErrno("write \(directory)/\(try fileName())") }
    }

    public func remove() throws {
        let folder = try ChangeLock.openPrivateDirectory(directory)
        guard unlinkat(folder.rawValue, try fileName(), 0) == 0 || errno == ENOENT else {
            throw KernelError.fromErrno("remove \(directory)/\(try fileName())")
        }
    }
}
