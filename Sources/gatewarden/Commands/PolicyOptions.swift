import ArgumentParser
import GatewardenPolicy

/// `--policy FILE`, or the built-in default.
struct PolicyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The policy file (YAML, see docs/policy.md); without it, the built-in default.",
                               valueName: "file"))
    var policy: String?

    /// The policy, or every problem in it (printed one a line by the caller).
    func load() throws -> Policy {
        guard let policy else { return .builtInDefault }
        return try PolicyParser.parse(file: policy)
    }

    var source: String { policy ?? "the built-in default policy" }
}
