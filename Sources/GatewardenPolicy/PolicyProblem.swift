/// One thing wrong with a policy, where it is and which key: `FILE:LINE:COLUMN: key: what is wrong`.
public struct PolicyProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let column: Int
    public let key: String
    public let message: String

    public var description: String { "\(file):\(line):\(column): \(key): \(message)" }
}

/// Every problem found in a policy; `check` prints them all, one a line.
public struct PolicyProblems: Error, Sendable, CustomStringConvertible {
    public let problems: [PolicyProblem]
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
