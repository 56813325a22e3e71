/// One metric family as the exposition formats see it: a name, help, a type and samples.
///
///     var family = MetricFamily(name: "gatewarden_up", help: "Whether a collector succeeded.", type: .gauge)
///     family.add(["collector": "nftables"], 1)
public struct MetricFamily: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case counter, gauge, info, unknown
    }

    /// One sample: labels in the order they were given, and a value.
    public struct Sample: Sendable, Equatable {
        public var labels: [(name: String, value: String)]
        public var value: Double

        public init(labels: [(name: String, value: String)], value: Double) {
            self.labels = labels
            self.value = value
        }

        public static func == (lhs: Sample, rhs: Sample) -> Bool {
            lhs.value == rhs.value && lhs.labels.elementsEqual(rhs.labels) { $0.name == $1.name && $0.value == $1.value }
        }
    }

    /// The full name; counters end in `_total` as the metric contract requires.
    public let name: String
    public let help: String
    public let type: Kind
    public private(set) var samples: [Sample] = []

    public init(name: String, help: String, type: Kind) {
        self.name = name
        self.help = help
        self.type = type
    }

    public mutating func add(_ labels: KeyValuePairs<String, String>, _ value: Double) {
        samples.append(Sample(labels: labels.map { (name: $0.key, value: $0.value) }, value: value))
    }

    public mutating func add(labels: [(name: String, value: String)], _ value: Double) {
        samples.append(Sample(labels: labels, value: value))
    }
}
