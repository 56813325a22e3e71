import CCrypt
import Foundation

/// bcrypt password checks through libxcrypt (`crypt_r`), with a small cache so a scrape every
/// few seconds does not cost a bcrypt computation (tens of milliseconds) each time.
public final class BCrypt: @unchecked Sendable {
    private let lock = NSLock()
    private var verified: Set<String> = []
    private let cacheLimit = 64

    public init() {}

    /// Whether `text` looks like a bcrypt hash: `$2a$`, `$2b$` or `$2y$`, a cost, 53 more characters.
    public static func isHash(_ text: String) -> Bool {
        let parts = text.split(separator: "$", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0].isEmpty && ["2a", "2b", "2y"].contains(parts[1])
            && Int(parts[2]).map { (4...31).contains($0) } == true && parts[3].count == 53
    }

    /// Whether `password` matches `hash`.
    public func verify(password: String, hash: String) -> Bool {
        let cacheKey = hash + "\u{0}" + password
        if lock.withLock({ verified.contains(cacheKey) }) { return true }
        guard Self.compute(password: password, setting: hash).map({ Self.constantTimeEqual($0, hash) }) == true else {
            return false
        }
        lock.withLock {
            if verified.count >= cacheLimit { verified.removeAll() }
            verified.insert(cacheKey)
        }
        return true
    }

    /// crypt_r with the hash as its setting: the result equals the hash when the password matches.
    private static func compute(password: String, setting: String) -> String? {
        let data = UnsafeMutablePointer<crypt_data>.allocate(capacity: 1)
        defer { data.deallocate() }
        UnsafeMutableRawPointer(data).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<crypt_data>.size)
        guard let result = crypt_r(password, setting, data) else { return nil }
        let text = String(cString: result)
        return text.hasPrefix("*") ? nil : text
    }

    /// Whether `a` equals `b`, in a time that depends on their lengths only, never on where they differ.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for index in 0..<max(x.count, y.count) {
            difference |= (index < x.count ? x[index] : 0) ^ (index < y.count ? y[index] : 0)
        }
        return difference == 0
    }

    /// The cost field of a bcrypt hash (`10` in `$2b$10$...`), or nil when `hash` is not one.
    static func cost(of hash: String) -> Int? {
        guard isHash(hash) else { return nil }
        return Int(hash.split(separator: "$", omittingEmptySubsequences: false)[2])
    }
}
