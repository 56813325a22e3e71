import Foundation

/// A log file in a folder of its own, written the ways nginx and logrotate write and move logs;
/// the folder is removed when the value goes away.
final class TemporaryLog {
    let directory: URL
    var path: String { directory.appendingPathComponent("gatewarden.log").path }

    init() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("tlsfeed-test-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    /// Appends `text` as nginx does (O_APPEND), creating the file if needed.
    func append(_ text: String) throws {
        try append(Data(text.utf8))
    }

    func append(_ data: Data) throws {
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: data)
    }

    /// logrotate without copytruncate: the file is renamed; nginx writes on in it until told to reopen.
    func rename(to name: String) throws -> TemporaryLog.Moved {
        let moved = directory.appendingPathComponent(name).path
        try FileManager.default.moveItem(atPath: path, toPath: moved)
        return Moved(path: moved)
    }

    /// logrotate's copytruncate: copy, then truncate in place.
    func copyTruncate(to name: String) throws {
        try FileManager.default.copyItem(atPath: path, toPath: directory.appendingPathComponent(name).path)
        guard truncate(path, 0) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }

    /// A file renamed away, that a not-yet-reopened nginx still appends to.
    struct Moved {
        let path: String

        func append(_ text: String) throws {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(text.utf8))
        }
    }
}

/// Lines of the gatewarden format, for tests.
enum LogText {
    /// One `gw1` line (with its newline).
    static func line(time: Double = 1_800_000_000, address: String = "203.0.113.7", connection: Int = 1, requests: Int = 1,
                     reused: String = ".", tlsProtocol: String = "TLSv1.2", status: Int = 200) -> String {
        "gw1 \(String(format: "%.3f", time)) \(address) \(connection) \(requests) \(reused) \(tlsProtocol) \(status) 0.001\n"
    }
}
