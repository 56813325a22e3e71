import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The one enforce loop of a namespace: an exclusive lock on `enforce.lock` in its state folder,
/// held while the loop runs (the kernel drops it when the process dies, kill -9 included). Two loops
/// on one namespace would both repair and both write the statistics, whose counters would then jump
/// between two processes' figures.
///
///     let claim = try LoopClaim(stateDirectory: dir)   // throws naming the pid of the loop already running
public final class LoopClaim: @unchecked Sendable {
    private let descriptor: Int32

    public struct Taken: Error, CustomStringConvertible {
        public let path: String
        public let holder: String
        public var description: String {
            "another enforce loop (\(holder)) already runs for this namespace (lock \(path)); "
                + "run one per namespace: `gatewarden serve` runs it unless --no-enforce"
        }
    }

    public init(stateDirectory: String) throws {
        let path = "\(stateDirectory)/enforce.lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw BanStore.Error(path: path, problem: "cannot be opened (\(String(cString: strerror(errno))))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 64)
            let count = pread(descriptor, &buffer, buffer.count, 0)
            close(descriptor)
            let pid = String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw Taken(path: path, holder: pid.isEmpty ? "pid unknown" : "pid \(pid)")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(descriptor, 0)
        _ = pid.withCString { pwrite(descriptor, $0, strlen($0), 0) }
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }
}
