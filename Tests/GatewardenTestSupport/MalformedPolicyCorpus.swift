import Foundation

/// A malformed policy from `Tests/Fixtures/policies/malformed/` and the problem it must produce.
///
/// Each file's first line says what `gatewarden check` must report:
///
///     # expect: 5:12 limits.per_subnet.burst: below the rate
public struct MalformedPolicy: CustomStringConvertible, Sendable {
    public let file: String
    public let yaml: String
    public let line: Int
    public let column: Int
    public let key: String
    public let message: String

    public var name: String { (file as NSString).lastPathComponent }
    public var description: String { name }

    /// The corpus directory, found from this source file (tests run from anywhere).
    public static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/policies/malformed").path

    /// Every malformed policy, in file order.
    public static func corpus() -> [MalformedPolicy] {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
        return files.compactMap { name in
            let path = "\(directory)/\(name)"
            guard let yaml = try? String(contentsOfFile: path, encoding: .utf8),
                  let header = yaml.split(separator: "\n").first, header.hasPrefix("# expect: ") else { return nil }
            // "LINE:COLUMN key: message"
            let expectation = header.dropFirst("# expect: ".count)
            guard let space = expectation.firstIndex(of: " ") else { return nil }
            let position = expectation[..<space].split(separator: ":").compactMap { Int($0) }
            let rest = expectation[expectation.index(after: space)...]
            guard position.count == 2, let colon = rest.range(of: ": ") ?? rest.range(of: ":") else { return nil }
            return MalformedPolicy(file: path, yaml: yaml, line: position[0], column: position[1],
                                   key: String(rest[..<colon.lowerBound]),
                                   message: String(rest[colon.upperBound...]).trimmingCharacters(in: .whitespaces))
        }
    }
}
