import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// The BPF filesystem (bpffs) where pins live, and mounting it where it is missing.
///
/// A fresh machine often has no bpffs at /sys/fs/bpf (systemd mounts it; minimal images
/// do not), and a pin can only be made on bpffs. `load` therefore mounts it, as libxdp and
/// bpftool do; readers (status, serve, block, unload) only look, so with no bpffs they find
/// no instances and change nothing.
///
///     let bpffs = BPFFilesystem()            // /sys/fs/bpf
///     if try bpffs.mountIfMissing() { print("mounted bpffs at \(bpffs.path)") }
public struct BPFFilesystem: Sendable, Equatable {
    /// Where every tool looks for bpffs; Gatewarden's pins live under it (PinLayout.defaultRoot).
    public static let defaultPath = "/sys/fs/bpf"

    public let path: String

    public init(path: String = BPFFilesystem.defaultPath) {
        self.path = path
    }

    /// The command an operator runs when Gatewarden cannot mount it.
    public var mountCommand: String { "mount -t bpf bpf \(path)" }

    /// Whether `path` is the root of a mounted bpffs (statfs f_type is BPF_FS_MAGIC).
    /// False when the path is missing or is a plain directory, e.g. of sysfs.
    public var isMounted: Bool {
        var status = statfs()
        return statfs(path, &status) == 0 && status.f_type == Int(BPF_FS_MAGIC)
    }

    /// Mounts bpffs at `path` (mode 0700, as systemd does) unless it is already mounted there.
    /// Returns true when it mounted.
    ///
    /// Concurrent loads must not stack two bpffs instances (the second would hide the pins
    /// made on the first), so the check and the mount run under an exclusive flock on the
    /// mount point directory; the check after the lock goes by path, which then resolves to
    /// any bpffs mounted meanwhile.
    @discardableResult
    public func mountIfMissing() throws -> Bool {
        if isMounted { return false }
        let directory = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw MountError(path: path, errno: errno) }
        defer { close(directory) }
        guard flock(directory, LOCK_EX) == 0 else { throw MountError(path: path, errno: errno) }
        defer { flock(directory, LOCK_UN) }
        if isMounted { return false }
        guard mount("bpf", path, "bpf", 0, "mode=0700") == 0 else { throw MountError(path: path, errno: errno) }
        return true
    }

    /// Whether this process runs in another mount namespace than PID 1 (under `ip netns exec` or
    /// `unshare -m`). A bpffs mounted there, and the pins on it, last only as long as that mount
    /// namespace: for `ip netns exec`, until the command exits. False when it cannot tell: PID 1's
    /// namespace unreadable (some sandboxes), or PID 1 itself in the same one (a container).
    public static var inPrivateMountNamespace: Bool {
        var own = stat(), initial = stat()
        guard stat("/proc/self/ns/mnt", &own) == 0, stat("/proc/1/ns/mnt", &initial) == 0 else { return false }
        return own.st_ino != initial.st_ino || own.st_dev != initial.st_dev
    }

    /// bpffs is missing and could not be mounted: one line naming the place and the fix.
    public struct MountError: Error, CustomStringConvertible, Sendable {
        public let path: String
        public let errno: Int32

        public init(path: String, errno: Int32) {
            self.path = path
            self.errno = errno
        }

        public var description: String {
            "bpffs is not mounted at \(path) and mounting it failed: \(String(cString: strerror(errno))); "
                + "mount it with `\(BPFFilesystem(path: path).mountCommand)` (needs CAP_SYS_ADMIN), then load again"
        }
    }
}
