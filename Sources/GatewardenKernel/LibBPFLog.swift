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
            _ = libbpf_set_print { level, format, arguments in
                guard let format, let arguments, level.rawValue <= LIBBPF_INFO.rawValue else { return 0 }
                var buffer = [CChar](repeating: 0, count: 4096)
                let written = vsnprintf(&buffer, buffer.count, format, arguments)
                guard written > 0 else { return 0 }
                let length = min(Int(written), buffer.count - 1)
                LibBPFLog.shared.append(String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self))
                return written
            }
        }
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
