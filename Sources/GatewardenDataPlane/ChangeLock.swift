#if canImport(Glibc)
import Glibc
import GatewardenKernel
#endif

/// Serializes the commands that change Gatewarden in one network namespace (`load`, `unload`,
/// `block`, `unblock`): the nftables table is shared by every instance in a namespace, and gw_config
/// and the list prefilter are rewritten from what was just read, so two changes at once could
/// leave XDP running one's policy and nftables the other's, or revert each other's bans.
///
/// The lock is an flock(2) on `/run/gatewarden/netns-INODE.lock`, INODE naming the network
/// namespace itself (as nsfs does), so `--netns NAME` and a command run through `ip netns exec NAME`
/// take the same lock; /run is one filesystem for every mount namespace, so `unshare -m` and
/// `ip netns exec` see the same file. The folder is root's with mode 0700 and the file is opened
/// without following links: a user who could create or replace it could block or spoof a change.
/// The kernel drops an flock when its holder dies, so a crash never leaves a stale lock.
///
///     let lock = try ChangeLock.acquire(for: namespace, command: "load", waiting: .seconds(30))
///     defer { lock.release() }
public final class ChangeLock {
    public static let defaultDirectory = "/run/gatewarden"

    /// Waits no longer than this unless told otherwise.
    public static let defaultWait: Duration = .seconds(30)

    private let directory: FileDescriptor
    private let name: String
    private var file: FileDescriptor?

    private init(directory: FileDescriptor, name: String, file: FileDescriptor) {
        self.directory = directory
        self.name = name
        self.file = file
    }

    deinit { release() }

    /// Takes the lock of `namespace`, waiting up to `waiting` for another holder (saying on
    /// `notice` once whom it waits for), then failing with an error naming the holder's pid.
    /// `command` is recorded for others to see.
    public static func acquire(for namespace: NetworkNamespace, command: String, waiting: Duration = defaultWait,
                               directory path: String = defaultDirectory,
                               notice: (String) -> Void = { _ in }) throws -> ChangeLock {
        let directory = try openPrivateDirectory(path)
        let name = "netns-\(try namespaceInode(namespace)).lock"
        let deadline = ContinuousClock.now + waiting
        var announced = false
        while true {
            let file = try openLockFile(name, in: directory, path: path)
            if flock(file.rawValue, LOCK_EX | LOCK_NB) == 0 {
                // A holder unlinks the file as it releases; a lock on an unlinked file locks nothing.
                guard try isStillLinked(file, name: name, in: directory) else { continue }
                record(command: command, in: file)
                return ChangeLock(directory: directory, name: name, file: file)
            }
            guard errno == EWOULDBLOCK else { throw KernelError.fromErrno("lock \(path)/\(name)") }
            let holder = holderDescription(file)
            guard ContinuousClock.now < deadline else {
                throw KernelError(operation: "another gatewarden (\(holder)) is changing Gatewarden in \(namespace); "
                    + "gave up after waiting \(waiting) for its lock \(path)/\(name)")
            }
            if !announced {
                notice("gatewarden: waiting for \(holder), which is changing Gatewarden in \(namespace)")
                announced = true
            }
            usleep(20_000)
        }
    }

    /// Runs `body` holding the lock of `namespace`.
    public static func holding<T>(_ namespace: NetworkNamespace, command: String, waiting: Duration = defaultWait,
                                  directory: String = defaultDirectory, notice: (String) -> Void = { _ in },
                                  _ body: () throws -> T) throws -> T {
        let lock = try acquire(for: namespace, command: command, waiting: waiting, directory: directory, notice: notice)
        defer { lock.release() }
        return try body()
    }

    /// Removes the file, then unlocks: a waiter that then gets the old file sees it unlinked and
    /// starts again on a new one, so the folder holds files of held locks only.
    public func release() {
        guard file != nil else { return }
        unlinkat(directory.rawValue, name, 0)
        file = nil
    }

    // MARK: Opening safely

    /// The lock folder, created root-only where missing; refused where someone else could write to it.
    static func openPrivateDirectory(_ path: String) throws -> FileDescriptor {
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw KernelError.fromErrno("create the lock folder \(path)")
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw KernelError.fromErrno("open the lock folder \(path) (it must be a folder, not a link)") }
        let directory = FileDescriptor(owning: fd)
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw KernelError.fromErrno("inspect the lock folder \(path)") }
        guard status.st_uid == geteuid(), status.st_mode & (S_IWGRP | S_IWOTH) == 0 else {
            throw KernelError(operation: "the lock folder \(path) is owned by uid \(status.st_uid) with mode "
                + String(status.st_mode & 0o7777, radix: 8) + "; it must be uid \(geteuid())'s and writable by it alone "
                + "(remove it and gatewarden makes it anew)")
        }
        return directory
    }

    private static func openLockFile(_ name: String, in directory: FileDescriptor, path: String) throws -> FileDescriptor {
        let fd = openat(directory.rawValue, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw KernelError.fromErrno("open the lock file \(path)/\(name)") }
        return FileDescriptor(owning: fd)
    }

    private static func isStillLinked(_ file: FileDescriptor, name: String, in directory: FileDescriptor) throws -> Bool {
        var held = stat(), linked = stat()
        guard fstat(file.rawValue, &held) == 0 else { throw KernelError.fromErrno("inspect the lock file \(name)") }
        guard fstatat(directory.rawValue, name, &linked, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { return false }
            throw KernelError.fromErrno("inspect the lock file \(name)")
        }
        return held.st_dev == linked.st_dev && held.st_ino == linked.st_ino
    }

    /// The inode of the namespace's nsfs file: the same for every path that reaches it.
    static func namespaceInode(_ namespace: NetworkNamespace) throws -> UInt64 {
        let path = namespace.name.map { "\(NetworkNamespace.namedNamespaceDirectory)/\($0)" } ?? "/proc/thread-self/ns/net"
        var status = stat()
        guard stat(path, &status) == 0 else { throw KernelError.fromErrno("identify \(namespace) (\(path))") }
        return UInt64(status.st_ino)
    }

    // MARK: Who holds it

    private static func record(command: String, in file: FileDescriptor) {
        let line = "\(getpid()) \(command)\n"
        ftruncate(file.rawValue, 0)
        _ = line.withCString { pwrite(file.rawValue, $0, strlen($0), 0) }
    }

    /// "pid 4242, `gatewarden load`", from what the holder recorded (it may not have yet).
    private static func holderDescription(_ file: FileDescriptor) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { pread(file.rawValue, $0.baseAddress, $0.count, 0) }
        let text = String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self).split(separator: "\n").first ?? ""
        guard let space = text.firstIndex(of: " "), let pid = Int32(text[..<space]) else { return "a process" }
        return "pid \(pid), `gatewarden \(text[text.index(after: space)...])`"
    }
}
