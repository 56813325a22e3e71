import Foundation
import Testing
@testable import GatewardenEnforce

/// The follower against real files, written, renamed and truncated as nginx and logrotate do.
@Suite("Following a log like tail -F")
struct LogFollowerTests {
    /// The lines one poll hands over, as text.
    private func lines(_ follower: LogFollower, at now: Double = 0) -> [String] {
        var lines: [String] = []
        follower.poll(now: now) { lines.append(String(decoding: $0, as: UTF8.self)) }
        return lines
    }

    @Test("a file that exists is read from its end; what is appended after is read once")
    func startsAtEnd() throws {
        let log = try TemporaryLog()
        try log.append("old 1\nold 2\n")
        let follower = LogFollower(path: log.path)
        #expect(lines(follower) == [])
        try log.append("new 1\nnew 2\n")
        #expect(lines(follower) == ["new 1", "new 2"])
        #expect(lines(follower) == [], "nothing is read twice")
        #expect(follower.statistics.bytesRead == 12)
    }

    @Test("started in the middle of a line: that line's end is skipped, not taken for a line")
    func startsMidLine() throws {
        let log = try TemporaryLog()
        try log.append("old 1\nhalf a li")
        let follower = LogFollower(path: log.path)
        #expect(lines(follower) == [])
        try log.append("ne\nnew\n")
        #expect(lines(follower) == ["new"])
        #expect(follower.statistics.overLongLines == 0)
    }

    @Test("a missing file is waited for, then read from its start")
    func missingFile() throws {
        let log = try TemporaryLog()
        let follower = LogFollower(path: log.path)
        #expect(lines(follower) == [])
        #expect(!follower.statistics.isFollowing && follower.statistics.openFailures == 0)
        try log.append("first\n")
        #expect(lines(follower) == ["first"])
        #expect(follower.statistics.isFollowing)
    }

    @Test("a partial last line is held until its newline")
    func partialLine() throws {
        let log = try TemporaryLog()
        let follower = LogFollower(path: log.path)
        try log.append("one\ntw")
        #expect(lines(follower) == ["one"])
        try log.append("o")
        #expect(lines(follower) == [])
        try log.append("\nthree\n")
        #expect(lines(follower) == ["two", "three"])
    }

    @Test("rename rotation in the middle of writing: the old file is drained, also what nginx writes to it before reopening, then the new one; nothing lost, nothing twice")
    func renameRotation() throws {
        let log = try TemporaryLog()
        let follower = LogFollower(path: log.path)
        try log.append("a1\n")
        #expect(lines(follower, at: 0) == ["a1"])
        try log.append("a2\na3 par")
        let moved = try log.rename(to: "gatewarden.log.1")
        try moved.append("tial\na4\n")              // nginx has not reopened yet
        #expect(lines(follower, at: 1) == ["a2", "a3 partial", "a4"])
        try log.append("b1\n")                       // nginx reopened: a new file at the path
        try moved.append("a5\n")                     // a last line a slow worker wrote to the old one
        #expect(lines(follower, at: 2) == ["a5", "b1"])
        #expect(follower.statistics.renames == 1)
        try log.append("b2\n")
        #expect(lines(follower, at: 100) == ["b2"], "the old file is let go after it stopped growing")
        #expect(lines(follower, at: 200) == [])
    }

    @Test("copytruncate in the middle of writing: the file is read again from its start, also when it grew past the old offset before the poll")
    func copyTruncate() throws {
        let log = try TemporaryLog()
        let follower = LogFollower(path: log.path)
        try log.append("a1\n")
        #expect(lines(follower) == ["a1"])
        try log.append("a2\n")
        #expect(lines(follower) == ["a2"])
        try log.copyTruncate(to: "gatewarden.log.1")
        try log.append("b1\n")
        #expect(lines(follower) == ["b1"], "shorter than the offset")
        #expect(follower.statistics.truncations == 1)

        try log.append("b2 half")
        #expect(lines(follower) == [], "a line without its newline yet")
        try log.copyTruncate(to: "gatewarden.log.2")
        // Longer than before by the time of the next poll: only the rewritten bytes tell.
        try log.append("c1 a line longer than everything read before it\nc2\n")
        #expect(lines(follower) == ["c1 a line longer than everything read before it", "c2"])
        #expect(follower.statistics.truncations == 2)
        #expect(follower.statistics.partialLinesDropped == 1, "the half line cut by the truncation")
    }

    @Test("a 1 MB line is skipped to its newline without being buffered, and counted; the lines around it are read")
    func overLongLine() throws {
        let log = try TemporaryLog()
        let follower = LogFollower(path: log.path)
        try log.append("before\n" + String(repeating: "x", count: 1 << 20) + "\nafter\n")
        #expect(lines(follower) == ["before", "after"])
        #expect(follower.statistics.overLongLines == 1)

        // Written in pieces across polls, the same.
        try log.append(String(repeating: "y", count: 20_000))
        #expect(lines(follower) == [])
        try log.append(String(repeating: "y", count: 20_000))
        #expect(lines(follower) == [])
        try log.append("y\nnext\n")
        #expect(lines(follower) == ["next"])
        #expect(follower.statistics.overLongLines == 2)
    }

    @Test("each poll reads a bounded amount; the rest comes with the next polls, in order")
    func boundedPoll() throws {
        let log = try TemporaryLog()
        var limits = LogFollower.Limits()
        limits.maximumBytesPerPoll = 100
        let follower = LogFollower(path: log.path, limits: limits)
        _ = lines(follower)
        let written = (0..<50).map { "line \($0)" }
        try log.append(written.map { $0 + "\n" }.joined())
        var read: [String] = []
        var polls = 0
        while read.count < written.count && polls < 100 {
            let got = lines(follower)
            #expect(got.count <= 100 / 7 + 1)
            read += got
            polls += 1
        }
        #expect(read == written)
        #expect(polls > 3)
    }

    @Test("binary garbage and a directory at the path do not stop the follower")
    func garbage() throws {
        let log = try TemporaryLog()
        let follower = LogFollower(path: log.path)
        _ = lines(follower)
        var random = SystemRandomNumberGenerator()
        let junk = Data((0..<200_000).map { _ in UInt8.random(in: 0...255, using: &random) })
        try log.append(junk)
        try log.append("\nreal\n")
        let got = lines(follower)
        #expect(got.last == "real")
        #expect(follower.statistics.bytesRead == UInt64(junk.count + 6))

        let other = try TemporaryLog()
        try FileManager.default.createDirectory(atPath: other.path, withIntermediateDirectories: false)
        let confused = LogFollower(path: other.path)
        #expect(lines(confused) == [])
        #expect(!confused.statistics.isFollowing && confused.statistics.openFailures == 1)
    }
}
