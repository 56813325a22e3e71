import Foundation
import GatewardenCore

/// What a policy was read from, kept so it can be read again exactly as it was loaded: the file's
/// text (nil: the built-in default), its path for messages, and the `--observe` override.
///
///     let source = try PolicySource(file: "/etc/gatewarden/policy.yaml", observe: false)
///     let policy = try source.policy()
public struct PolicySource: Codable, Sendable, Equatable {
    public var text: String?
    public var file: String?
    public var observe: Bool

    /// The built-in default.
    public init(observe: Bool = false) {
        self.text = nil
        self.file = nil
        self.observe = observe
    }

    /// Reads `file` now; the text is kept, so a later edit of the file changes nothing of this source.
    public init(file: String, observe: Bool = false) throws {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw PolicyProblems(problems: [PolicyProblem(file: file, line: 0, column: 0, key: "--policy",
                                                          message: "cannot read the file")])
        }
        // Problems in the bytes are reported by `policy()` at their place; the text keeps what it can.
        self.text = String(decoding: data, as: UTF8.self)
        self.file = file
        self.observe = observe
        _ = try PolicyParser.parse(data: data, file: file)
    }

    /// The policy, with the observe override applied.
    public func policy() throws -> Policy {
        var policy = try text.map { try PolicyParser.parse(yaml: $0, file: file ?? "(policy)") } ?? .builtInDefault
        if observe { policy.mode = .observe }
        return policy
    }

    /// How messages name it.
    public var name: String { file ?? "the built-in default policy" }
}
