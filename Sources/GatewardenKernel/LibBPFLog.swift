import CLibBPF
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Collects what libbpf prints (warnings, and the verifier log when a load fails),
/// so an error can carry the kernel's reason instead of it scrolling past on stderr.
final class LibBPFLog: @unchecked Sendable {
    static let shared = LibBPFLog()

    private let lock = NSLock()
    private var lines: [String] = []
    private var installed = false

    /// Routes libbpf's output here; idempotent.
    func install() {
        lock.withLock {
            guard !installed else { return }
            installed = true
            _ = libbpf_set_print { level, format, arguments in LibBPFLog.shared.receive(level, format, arguments) }
        }
    }

    /// What libbpf prints goes here.
    func receive(_ level: libbpf_print_level, _ format: UnsafePointer<CChar>?, _ arguments: CVaListPointer?) -> Int32 {
        guard let format, let arguments, level.rawValue <= LIBBPF_INFO.rawValue,
              let text = Self.format(format, arguments) else { return 0 }
        append(text)
        return Int32(clamping: text.utf8.count)
    }

    /// One message formatted whole, however long: libbpf prints the verifier's log, megabytes of it
    /// with the reason for a rejection at its end, as a single message.
    static func format(_ format: UnsafePointer<CChar>, _ arguments: CVaListPointer) -> String? {
        guard let formatted = gatewarden_format_message(format, arguments) else { return nil }
        defer { free(formatted) }
        return String(decoding: UnsafeRawBufferPointer(start: formatted, count: strlen(formatted)), as: UTF8.self)
    }

    private func append(_ text: String) {
        lock.withLock {
            lines.append(text)
            if lines.count > 4000 { lines.removeFirst(lines.count - 4000) }
        }
    }

    /// Runs `body` and returns what libbpf printed meanwhile along with its result.
    func capturing<T>(_ body: () throws -> T) rethrows -> (T, String) {
        install()
        let start = lock.withLock { lines.count }
        let result = try body()
        let text = lock.withLock { lines.count > start ? lines[start...].joined() : "" }
        return (result, text)
    }

    /// The last `limit` lines of `log`: verifier logs can be long, the reason is at the end.
    static func tail(_ log: String, lines limit: Int = 40) -> String {
        log.split(separator: "\n", omittingEmptySubsequences: false).suffix(limit).joined(separator: "\n")
    }
}
