import ArgumentParser
import GatewardenPolicy

/// `--policy FILE`, or the built-in default.
struct PolicyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The policy file (YAML, see docs/policy.md); without it, the built-in default.",
                               valueName: "file"))
    var policy: String?

    @Flag(help: ArgumentHelp("Observe mode: judge and count as usual, but drop, reset and ban nothing for a limit.",
                             discussion: "Overrides the policy's `mode`. Bans already in force still drop."))
    var observe = false

    /// The policy, or every problem in it (printed one a line by the caller).
    func load() throws -> Policy {
        try source().policy()
    }

    /// What the policy is read from, kept as read.
    func source() throws -> PolicySource {
        try policy.map { try PolicySource(file: $0, observe: observe) } ?? PolicySource(observe: observe)
    }

    var name: String { policy ?? "the built-in default policy" }
}
