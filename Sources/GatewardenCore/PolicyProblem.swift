/// One thing wrong with a policy, where it is and which key: `FILE:LINE:COLUMN: key: what is wrong`.
public struct PolicyProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let column: Int
    public let key: String
    public let message: String

    public init(file: String, line: Int, column: Int, key: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.message = message
    }

    public var description: String { "\(file):\(line):\(column): \(key): \(message)" }
}

/// Every problem found in a policy; `check` prints them all, one a line.
public struct PolicyProblems: Error, Sendable, CustomStringConvertible {
    public let problems: [PolicyProblem]

    public init(problems: [PolicyProblem]) {
        self.problems = problems
    }

    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
