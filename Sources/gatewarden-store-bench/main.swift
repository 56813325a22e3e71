import Foundation
import GatewardenCore
import GatewardenEnforce
import GatewardenPolicy

// gatewarden-store-bench: what the enforce loop's pure parts cost, as medians of a few runs.
//
//   - the ban store on a real file (WAL, synchronous FULL) in a scratch directory: writing 100,000
//     bans in one transaction, reading them back (`activeBans`, what a restart restores), reopening
//     the file (its integrity check included), and promoting 1,000 candidates whose prefixes have
//     offence history;
//   - the violation tracker fed 1,000,000 keys per interval: a spoofed flood of one-off sources, and
//     200,000 persistent offenders among 800,000 one-offs; the baseline is inserting the same keys
//     into a Set (the least any deduplicating loop does).
//
// No root needed; nothing outside the scratch directory is touched.
//
//     swift run -c release gatewarden-store-bench [--runs 3] [--bans 100000] [--keys 1000000]

struct Options {
    var runs = 3
    var bans = 100_000
    var keys = 1_000_000

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let flag = iterator.next() {
            guard let text = iterator.next(), let value = Int(text), value > 0 else { Self.usage() }
            switch flag {
            case "--runs": runs = value
            case "--bans": bans = value
            case "--keys": keys = value
            default: Self.usage()
            }
        }
    }

    static func usage() -> Never {
        FileHandle.standardError.write(Data("usage: gatewarden-store-bench [--runs N] [--bans N] [--keys N]\n".utf8))
        exit(2)
    }
}

/// Seconds taken by `body`, on the monotonic clock.
func seconds(_ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    let elapsed = try clock.measure(body)
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
}

func report(_ name: String, _ samples: [Double], per count: Int? = nil, baseline: Double? = nil) {
    let value = median(samples)
    var line = "\(name.padding(toLength: 66, withPad: " ", startingAt: 0)) \(String(format: "%9.1f ms", value * 1000))"
    if let count { line += String(format: "  %7.1f ns/item", value / Double(count) * 1e9) }
    if let baseline { line += String(format: "  %5.2fx baseline", value / baseline) }
    print(line)
}

/// The n-th distinct IPv4 /32 in 10.0.0.0/8 and beyond (n < 2^32).
func host(_ index: Int) -> PrefixKey {
    PrefixKey(high: 0, low: 0xffff_0000_0000 | UInt64(0x0a00_0000 &+ UInt32(truncatingIfNeeded: index)), mappedLength: 128)
}

let options = Options(CommandLine.arguments)
let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("gatewarden-store-bench-\(getpid())").path
defer { try? FileManager.default.removeItem(atPath: scratch) }

let now = Date()
let bans = (0..<options.bans).map { index in
    Ban(prefix: host(index).prefix, origin: index.isMultiple(of: 2) ? .rateSource : .tls, created: now,
        expires: now.addingTimeInterval(3600 + Double(index % 600)), offence: 1 + index % 4)
}
let schedule = BanSchedule(.seedDefaults)

print("gatewarden-store-bench: medians of \(options.runs) runs; \(options.bans) bans, \(options.keys) keys per interval")
do {
    var write: [Double] = [], read: [Double] = [], reopen: [Double] = [], promote: [Double] = [], count: [Double] = []
    for run in 0..<options.runs {
        let directory = "\(scratch)/run\(run)"
        let store = try BanStore(directory: directory)
        write.append(try seconds { try store.add(bans) })
        var restored = 0
        read.append(try seconds { restored = try store.activeBans(at: now).count })
        guard restored == bans.count else { fatalError("read back \(restored) of \(bans.count) bans") }
        reopen.append(try seconds { _ = try BanStore(directory: directory) })
        // What a scrape asks: bans in force by origin (gatewarden_bans), one counting query.
        count.append(try seconds { _ = try store.counts(at: now) })
        // 1,000 candidates, each with three past offences (expired bans) within history.
        let candidates = (0..<1000).map { BanCandidate(prefix: host(options.bans + $0).prefix, origin: .rateSubnet) }
        for round in 1...3 {
            let past = now.addingTimeInterval(Double(-round) * 86400)
            _ = try store.promote(candidates, now: past, schedule: schedule, applied: true)
            _ = try store.expire(at: past.addingTimeInterval(86399))
        }
        var promoted: [Ban] = []
        promote.append(try seconds { promoted = try store.promote(candidates, now: now, schedule: schedule, applied: true).bans })
        guard promoted.count == 1000, promoted.allSatisfy({ $0.offence == 4 }) else { fatalError("promotion went wrong") }
        try? FileManager.default.removeItem(atPath: directory)
    }
    report("store: write \(options.bans) bans (one transaction)", write, per: options.bans)
    report("store: read \(options.bans) bans back (activeBans)", read, per: options.bans)
    report("store: reopen with \(options.bans) bans (quick_check, migrate)", reopen)
    report("store: count \(options.bans) bans by origin (what a scrape costs)", count)
    report("store: promote 1000 candidates with 3 past offences each", promote, per: 1000)
} catch {
    print("store benchmark failed: \(error)")
    exit(1)
}

// MARK: Violation tracker

let flood = (0..<options.keys).map(host)
/// Interval `interval` of the steady case: the same fifth of persistent offenders, the rest fresh one-offs.
func steady(_ interval: Int) -> [PrefixKey] {
    (0..<options.keys).map { index in index < options.keys / 5 ? host(index) : host(interval * options.keys + index) }
}
var baseline: [Double] = [], floodCost: [Double] = [], steadyCost: [Double] = [], prefixCost: [Double] = []
var untracked = 0, tracked = 0, promotions = 0
for _ in 0..<options.runs {
    var set = Set<PrefixKey>()
    baseline.append(seconds { set = Set(flood) })
    precondition(set.count == options.keys)

    // A flood: a fresh million each interval; measured in the third interval, when the tracker is full.
    var tracker = ViolationTracker(.seedDefaults)
    for interval in 1...2 {
        _ = tracker.record(interval: UInt64(interval), offenders: flood.lazy.map { host(Int($0.low & 0xffff_ffff) &+ interval * 7_777_777) })
    }
    var report = ViolationTracker.Report()
    floodCost.append(seconds { report = tracker.record(interval: 3, offenders: flood) })
    untracked = report.untracked
    tracked = tracker.trackedCount

    // Persistent offenders among one-offs: the fifth interval promotes them.
    var persistent = ViolationTracker(.seedDefaults)
    for interval in 1...4 {
        _ = persistent.record(interval: UInt64(interval), offenders: steady(interval))
    }
    let fifth = steady(5)
    steadyCost.append(seconds { report = persistent.record(interval: 5, offenders: fifth) })
    promotions = report.promoted.count
}
report("tracker: Set of \(options.keys) keys (baseline)", baseline, per: options.keys)
report("tracker: \(options.keys) one-off keys, tracker full", floodCost, per: options.keys, baseline: median(baseline))
report("tracker: \(options.keys / 5) persistent + rest one-off, promoting", steadyCost, per: options.keys, baseline: median(baseline))
print("tracker: flood interval left \(untracked) keys untracked, \(tracked) tracked (capacity \(ViolationTracker.defaultCapacity)); "
      + "the steady run promoted \(promotions)")

// A first interval: a quarter million new keys into an empty tracker, as keys and as AddressPrefix
// values (what a loop holding prefixes would pass; the conversion to keys is included).
let newKeys = Array(flood.prefix(options.keys / 4))
let prefixes = newKeys.map(\.prefix)
var keysCost: [Double] = []
for _ in 0..<options.runs {
    var tracker = ViolationTracker(.seedDefaults)
    keysCost.append(seconds { _ = tracker.record(interval: 1, offenders: newKeys) })
    tracker = ViolationTracker(.seedDefaults)
    prefixCost.append(seconds { _ = tracker.record(interval: 1, offenders: prefixes) })
}
report("tracker: \(newKeys.count) new keys into an empty tracker", keysCost, per: newKeys.count, baseline: median(baseline))
report("tracker: the same as AddressPrefix (key conversion included)", prefixCost, per: prefixes.count, baseline: median(baseline))
