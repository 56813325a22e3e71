import GatewardenCore
import GatewardenDataPlane

/// Which sources and subnets the XDP program dropped (or, observing, would have dropped) for rate
/// since the previous reading: the offenders whose exact drop count grew. The first reading only
/// takes the counts as they are, so drops from before the loop started never count as evidence.
///
///     var evidence = XDPRateEvidence()
///     let found = try evidence.read(from: sink.instances().map(\.maps))
///     found.sources   // [198.51.100.7/32] while it keeps exceeding its limit
public struct XDPRateEvidence {
    private struct Key: Hashable {
        let prefix: PrefixKey
        let subnet: Bool
    }

    private var lastCounts: [Key: UInt64] = [:]
    private var primed = false

    public init() {}

    public struct Found: Sendable, Equatable {
        public var sources: [AddressPrefix] = []
        public var subnets: [AddressPrefix] = []
    }

    /// Reads every instance's offenders (their number is bounded by the offenders map, never the
    /// million tracked sources) and returns those whose count grew since the last call.
    public mutating func read(from instances: [XDPMaps]) throws -> Found {
        var counts: [Key: UInt64] = [:]
        for maps in instances {
            for offender in try maps.rateOffenders() {
                let key = Key(prefix: PrefixKey(offender.prefix), subnet: offender.kind == .subnet)
                counts[key, default: 0] += offender.droppedPackets
            }
        }
        defer {
            lastCounts = counts
            primed = true
        }
        guard primed else { return Found() }
        var grown: [(key: Key, drops: UInt64)] = []
        for (key, count) in counts {
            // A count below the last one is a bucket made anew (the old one evicted): all new drops.
            let previous = lastCounts[key] ?? 0
            guard count != previous else { continue }
            grown.append((key, count > previous ? count - previous : count))
        }
        // Heaviest first: when a spoofed flood fills the violation trackers, the sources that drop
        // the most still get their places.
        grown.sort { $0.drops > $1.drops }
        var found = Found()
        for (key, _) in grown {
            if key.subnet { found.subnets.append(key.prefix.prefix) } else { found.sources.append(key.prefix.prefix) }
        }
        return found
    }
}
