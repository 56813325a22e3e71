#if canImport(Glibc)
import Glibc
#endif

/// Follows a log file as it grows, like `tail -F`: each `poll` hands over the complete lines written
/// since the last one, reading only what is new.
///
///     let follower = LogFollower(path: "/var/log/nginx/gatewarden.log")
///     follower.poll(now: now) { line in ... }   // each line without its newline
///
/// - A file that exists when the follower is made is read from its end (what was logged before the
///   follower started is not news); a file that appears later, or replaces the followed one, from its
///   start.
/// - Rotation by rename: the old file is drained to its end before the new one is followed, and is
///   still read while nginx keeps writing to it (until it reopens its logs), up to `Limits.retireAfter`
///   seconds without growth.
/// - Rotation by copytruncate: a file shorter than the offset, or whose bytes before the offset are
///   no longer those read there (it was truncated and has grown past the offset since), is read again
///   from its start.
/// - A line is handed over only once its newline is written; a line longer than
///   `Limits.maximumLineLength` is skipped to its newline without being buffered. Each poll reads at
///   most `Limits.maximumBytesPerPoll`; the rest waits for the next poll.
/// - A missing or unreadable file is waited for, not an error.
public final class LogFollower {
    /// Bounds on what one poll reads and what one line may hold.
    public struct Limits: Sendable {
        public var maximumLineLength = 16 * 1024
        public var maximumBytesPerPoll = 8 * 1024 * 1024
        /// How long a renamed-away file is still read after it stopped growing.
        public var retireAfter: Double = 30

        public init() {}
    }

    /// What the follower did, for the feed's statistics.
    public struct Statistics: Sendable, Equatable {
        public var bytesRead: UInt64 = 0
        /// Lines longer than the limit, skipped.
        public var overLongLines: UInt64 = 0
        /// Unterminated line ends dropped: at a truncation, or when a renamed-away file was let go.
        public var partialLinesDropped: UInt64 = 0
        public var renames: UInt64 = 0
        public var truncations: UInt64 = 0
        /// Attempts to open the path that failed for a reason other than its absence.
        public var openFailures: UInt64 = 0
        /// Whether a file is being followed (false: waiting for it to appear).
        public var isFollowing = false

        public init() {}
    }

    public let path: String
    public let limits: Limits
    public private(set) var statistics = Statistics()

    private var current: OpenLog?
    /// A file renamed away, still read until nginx stops writing to it.
    private var retiring: OpenLog?
    /// Whether the next file opened is the one that was there when the follower was made.
    private var startsAtEnd: Bool
    private var buffer: [UInt8]

    public init(path: String, limits: Limits = Limits()) {
        self.path = path
        self.limits = limits
        buffer = [UInt8](repeating: 0, count: 64 * 1024)
        startsAtEnd = FileIdentity(path: path) != nil
    }

    deinit {
        current?.close()
        retiring?.close()
    }

    /// Reads what was written since the last poll and hands over each complete line, in file order
    /// (a renamed-away file's lines before the new file's). `now` is in seconds (any fixed origin).
    public func poll(now: Double, _ line: (UnsafeRawBufferPointer) -> Void) {
        var budget = limits.maximumBytesPerPoll
        if let old = retiring {
            let read = drain(old, budget: &budget, now: now, line)
            if read == 0 && budget > 0 && now - old.lastGrowth >= limits.retireAfter {
                letGo(old)
                retiring = nil
            }
        }
        if current == nil { current = open(fromEnd: startsAtEnd, now: now) }
        guard let file = current else {
            statistics.isFollowing = false
            return
        }
        statistics.isFollowing = true
        checkTruncation(file)
        _ = drain(file, budget: &budget, now: now, line)
        guard budget > 0 else { return }   // not at the end yet: rotation can wait for the next poll
        // Drained to the end: if the path now names another file, the old one was renamed away.
        guard let identity = FileIdentity(path: path), identity != file.identity else { return }
        statistics.renames += 1
        if let older = retiring { letGo(older) }
        retiring = file
        current = open(fromEnd: false, now: now)
        if let new = current { _ = drain(new, budget: &budget, now: now, line) }
    }

    // MARK: Files

    private func open(fromEnd: Bool, now: Double) -> OpenLog? {
        let descriptor = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno != ENOENT { statistics.openFailures += 1 }
            return nil
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            // A directory, a FIFO or a device at the path: nothing to follow (a FIFO would block).
            Glibc.close(descriptor)
            statistics.openFailures += 1
            return nil
        }
        startsAtEnd = false
        let file = OpenLog(descriptor: descriptor, identity: FileIdentity(status), now: now)
        if fromEnd && status.st_size > 0 {
            file.offset = Int64(status.st_size)
            file.rememberTail(reading: true)
            // Starting mid-line: its start was before our time; skip to its end without counting it.
            file.discarding = file.tail.last != UInt8(ascii: "\n")
        }
        return file
    }

    /// A copytruncated file is shorter than our offset, or has grown back past it with other bytes.
    private func checkTruncation(_ file: OpenLog) {
        var status = stat()
        guard fstat(file.descriptor, &status) == 0 else { return }
        let truncated = Int64(status.st_size) < file.offset || !file.tailStillMatches()
        guard truncated else { return }
        statistics.truncations += 1
        if !file.pending.isEmpty { statistics.partialLinesDropped += 1 }
        file.restart()
    }

    private func letGo(_ file: OpenLog) {
        if !file.pending.isEmpty { statistics.partialLinesDropped += 1 }
        file.close()
    }

    /// Reads `file` to its end or until the budget is spent; returns the bytes read.
    private func drain(_ file: OpenLog, budget: inout Int, now: Double, _ line: (UnsafeRawBufferPointer) -> Void) -> Int {
        var total = 0
        while budget > 0 {
            let wanted = min(buffer.count, budget)
            let count = buffer.withUnsafeMutableBytes { pread(file.descriptor, $0.baseAddress, wanted, off_t(file.offset)) }
            guard count > 0 else { break }   // the end, or an error: try again next poll
            buffer.withUnsafeBytes { bytes in
                let chunk = UnsafeRawBufferPointer(rebasing: bytes[0..<count])
                split(chunk, of: file, line)
                file.offset += Int64(count)
                file.rememberTail(after: chunk)
            }
            budget -= count
            total += count
            statistics.bytesRead += UInt64(count)
            file.lastGrowth = now
            if count < wanted { break }
        }
        return total
    }

    /// Hands over the lines `chunk` completes; keeps (or skips) what follows its last newline.
    private func split(_ chunk: UnsafeRawBufferPointer, of file: OpenLog, _ line: (UnsafeRawBufferPointer) -> Void) {
        guard let base = chunk.baseAddress else { return }
        let maximum = limits.maximumLineLength
        var start = 0
        while start < chunk.count {
            guard let newline = memchr(base + start, Int32(UInt8(ascii: "\n")), chunk.count - start) else {
                // An unfinished line: keep it for the next read, unless it is already too long.
                if !file.discarding {
                    if file.pending.count + chunk.count - start > maximum {
                        statistics.overLongLines += 1
                        file.pending.removeAll(keepingCapacity: true)
                        file.discarding = true
                    } else {
                        file.pending.append(contentsOf: chunk[start...])
                    }
                }
                return
            }
            let end = base.distance(to: UnsafeRawPointer(newline))
            if file.discarding {
                file.discarding = false
            } else if !file.pending.isEmpty {
                if file.pending.count + end - start > maximum {
                    statistics.overLongLines += 1
                } else {
                    file.pending.append(contentsOf: chunk[start..<end])
                    file.pending.withUnsafeBytes(line)
                }
                file.pending.removeAll(keepingCapacity: true)
            } else if end - start > maximum {
                statistics.overLongLines += 1
            } else {
                line(UnsafeRawBufferPointer(rebasing: chunk[start..<end]))
            }
            start = end + 1
        }
    }
}

/// Which file a path names: device and inode, as `tail -F` tells a rotated file from its successor.
struct FileIdentity: Equatable {
    var device: UInt64
    var inode: UInt64

    init(_ status: stat) {
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
    }

    init?(path: String) {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        self.init(status)
    }
}

/// One open log file and where the follower is in it.
final class OpenLog {
    /// Bytes kept from just before the offset, to notice a file rewritten under it.
    static let tailLength = 64

    private(set) var descriptor: Int32
    let identity: FileIdentity
    var offset: Int64 = 0
    /// The start of a line whose newline has not been read yet.
    var pending: [UInt8] = []
    /// Inside a line being skipped (too long, or begun before the follower started).
    var discarding = false
    /// The last bytes before `offset`.
    private(set) var tail: [UInt8] = []
    var lastGrowth: Double

    init(descriptor: Int32, identity: FileIdentity, now: Double) {
        self.descriptor = descriptor
        self.identity = identity
        lastGrowth = now
    }

    /// From the start again, as after a truncation.
    func restart() {
        offset = 0
        pending.removeAll(keepingCapacity: true)
        discarding = false
        tail.removeAll(keepingCapacity: true)
    }

    /// Keeps the last `tailLength` bytes read, `chunk` being what was just read before `offset`.
    func rememberTail(after chunk: UnsafeRawBufferPointer) {
        if chunk.count >= Self.tailLength {
            tail = Array(chunk.suffix(Self.tailLength))
        } else {
            tail.append(contentsOf: chunk)
            if tail.count > Self.tailLength { tail.removeFirst(tail.count - Self.tailLength) }
        }
    }

    /// Reads the bytes before `offset` from the file into `tail`.
    func rememberTail(reading: Bool) {
        let length = Int(min(Int64(Self.tailLength), offset))
        var bytes = [UInt8](repeating: 0, count: length)
        let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, length, off_t(offset - Int64(length))) }
        tail = count == length ? bytes : []
    }

    /// Whether the bytes before `offset` are still the ones read there.
    func tailStillMatches() -> Bool {
        guard !tail.isEmpty else { return true }
        var bytes = [UInt8](repeating: 0, count: tail.count)
        let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, tail.count, off_t(offset - Int64(tail.count))) }
        return count == tail.count && bytes == tail
    }

    func close() {
        guard descriptor >= 0 else { return }
        Glibc.close(descriptor)
        descriptor = -1
    }

    deinit { close() }
}
