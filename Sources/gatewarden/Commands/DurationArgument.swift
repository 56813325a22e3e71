import ArgumentParser
import GatewardenCore

/// A duration on the command line, written as in the policy: `90s`, `30m`, `1h`, `7d` (at most
/// `PolicyDuration.maximum`), or `0s` for none. Ban lengths (`--for`) and lock waits (`--lock-wait`).
struct DurationArgument: ExpressibleByArgument {
    let value: Duration
    let text: String

    init?(argument: String) {
        if argument == "0s" {
            value = .zero
        } else if let duration = PolicyDuration.parse(argument) {
            value = .seconds(Int64(duration.seconds))
        } else {
            return nil
        }
        text = argument
    }

    var isZero: Bool { value == .zero }
}
