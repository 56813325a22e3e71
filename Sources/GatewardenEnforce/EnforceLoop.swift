import CGatewardenABI
import Foundation
import GatewardenCore
import GatewardenDataPlane
import GatewardenKernel
import GatewardenPolicy

/// The enforce loop of one network namespace. Every `interval` it:
///
/// 1. repairs what another tool removed (the table, the XDP attachment), where `load` put them;
/// 2. forgets expired bans;
/// 3. reads the evidence: XDP's per-source and per-subnet drops (banned once a key had drops in
///    `violations` intervals within `window`), nftables' escalations, and the feeds;
/// 4. turns at most `max_new_bans` candidates into bans in the store (written before any kernel
///    change; repeat offenders get longer bans), never inside the allowlist, never wider than the
///    policy's subnet prefix; in observe mode they are recorded, not applied;
/// 5. brings both layers to hold every active ban of the store: a ban lost to a flush, a reboot or a
///    crash is back at the next interval.
///
/// Kernel changes are made holding the namespace's change lock, like `load` and `bans`.
///
///     let loop = try EnforceLoop(namespace: lab, policy: policy, store: try BanStore(directory: dir))
///     loop.run(until: stop)   // or loop.runOnce() in a test
public final class EnforceLoop: @unchecked Sendable {
    public let namespace: NetworkNamespace
    public let policy: Policy
    public let book: BanBook
    public let stateDirectory: String?
    private let pinRoot: String
    private let lockDirectory: String
    private let schedule: BanSchedule
    private var sourceTracker: ViolationTracker
    private var subnetTracker: ViolationTracker
    private var rateEvidence = XDPRateEvidence()
    private var feeds: [BanFeed]
    private var interval: UInt64 = 0
    /// When both layers were last brought to the store without error.
    private var lastFullApply: Date?
    /// The longest the layers go unchecked against the store while nothing changes.
    static let reconcileEvery: TimeInterval = 60
    private let statisticsLock = NSLock()
    private var statisticsValue = EnforceStatistics()
    private let log: (String) -> Void
    /// Held while this loop exists, when it keeps a state folder: one loop per namespace.
    private let claim: LoopClaim?

    public init(namespace: NetworkNamespace, policy: Policy, store: BanStore, stateDirectory: String? = nil,
                feeds: [BanFeed] = [], pinRoot: String = PinLayout.defaultRoot,
                lockDirectory: String = ChangeLock.defaultDirectory,
                log: @escaping (String) -> Void = { FileHandle.standardError.write(Data(("gatewarden: enforce: " + $0 + "\n").utf8)) }) throws {
        self.claim = try stateDirectory.map { try LoopClaim(stateDirectory: $0) }
        self.namespace = namespace
        self.policy = policy
        self.book = BanBook(store: store, sinks: BanBook.sinks(for: namespace, pinRoot: pinRoot))
        self.stateDirectory = stateDirectory
        self.pinRoot = pinRoot
        self.lockDirectory = lockDirectory
        self.schedule = BanSchedule(policy.enforce)
        self.sourceTracker = ViolationTracker(policy.enforce)
        self.subnetTracker = ViolationTracker(policy.enforce)
        self.feeds = feeds
        self.log = log
        statisticsValue.startedUnixSeconds = Date().timeIntervalSince1970
    }

    /// How many of a subnet's sources must be banned for their own rate before the subnet is.
    public static let subnetWitnesses = 2

    public var statistics: EnforceStatistics {
        statisticsLock.withLock { statisticsValue }
    }

    private func updateStatistics(_ change: (inout EnforceStatistics) -> Void) {
        statisticsLock.withLock { change(&statisticsValue) }
    }

    /// What one interval did.
    public struct Outcome: Sendable {
        public var repaired: Set<String> = []
        public var promoted: [Ban] = []
        public var observing = false
        public var expired = 0
        public var deferred = 0
        /// Violators not banned for want of proof they are real hosts (no completed handshake).
        public var unverified = 0
        public var written: [BanLayer: Int] = [:]
        public var errors: [String] = []
    }

    /// Runs intervals until `stop` says so (checked every 100 ms between intervals). Between intervals it
    /// also repairs what cannot wait for the next one (`repairBetweenIntervals`).
    public func run(until stop: @escaping @Sendable () -> Bool) {
        let period = policy.enforce.interval.timeInterval
        var next = Date()
        while !stop() {
            let outcome = runOnce()
            for error in outcome.errors { log(error) }
            for ban in outcome.promoted {
                log("\(outcome.observing ? "would ban" : "banned") \(ban.prefix) (\(ban.origin), offence \(ban.offence))"
                    + (ban.expires.map { " until \(ISO8601DateFormatter().string(from: $0))" } ?? ""))
            }
            next = max(next.addingTimeInterval(period), Date())
            var nextCheck = Date().addingTimeInterval(1), backoff: TimeInterval = 1
            while !stop() && Date() < next {
                usleep(100_000)
                guard Date() >= nextCheck else { continue }
                // A repair that fails waits twice as long each time (up to an interval), said once.
                backoff = repairBetweenIntervals(failing: backoff > 1) ? 1 : min(backoff * 2, period)
                nextCheck = Date().addingTimeInterval(backoff)
            }
        }
    }

    /// The table can vanish between intervals (`nft flush ruleset`, a firewall reload) or lose rules. While
    /// it does, the handshakes of SYNs XDP answers with cookies have nothing to complete them: so every
    /// second the loop looks, and repairs at once, without running an interval (no evidence read, no
    /// violation counted, the schedule kept). Returns false when damage is there and could not be repaired.
    private func repairBetweenIntervals(failing: Bool) -> Bool {
        let repair = KernelRepair(namespace: namespace, pinRoot: pinRoot)
        guard let damage = try? repair.damage(), !damage.isDisjoint(with: ["table", "tcp_loose"]) else { return true }
        do {
            let lock = try ChangeLock.acquire(for: namespace, command: "enforce", waiting: .seconds(1), directory: lockDirectory)
            defer { lock.release() }
            let repaired = try repair.repair()
            guard !repaired.isEmpty else { return true }
            log("repaired \(repaired.sorted().joined(separator: " and ")) in \(namespace) between intervals")
            updateStatistics { for what in repaired { $0.repairs[what, default: 0] += 1 } }
            if let stateDirectory { try? statistics.write(toDirectory: stateDirectory) }
            return true
        } catch {
            if !failing { log("repair failed: \(error) (trying again, less often)") }
            return false
        }
    }

    /// One interval.
    @discardableResult
    public func runOnce(now: Date = Date()) -> Outcome {
        let started = ContinuousClock.now
        interval += 1
        var outcome = Outcome()
        do {
            let lock = try ChangeLock.acquire(for: namespace, command: "enforce", waiting: .seconds(5), directory: lockDirectory)
            defer { lock.release() }
            try step(now: now, outcome: &outcome)
        } catch {
            outcome.errors.append("\(error)")
        }
        let elapsed = ContinuousClock.now - started
        updateStatistics { statistics in
            statistics.intervals += 1
            statistics.lastDurationSeconds = elapsed.timeInterval
            statistics.observing = outcome.observing
            if outcome.errors.isEmpty {
                statistics.lastSuccessUnixSeconds = Date().timeIntervalSince1970
                statistics.lastError = nil
            } else {
                statistics.failures += 1
                statistics.lastError = outcome.errors.joined(separator: "; ")
            }
        }
        if let stateDirectory { try? statistics.write(toDirectory: stateDirectory) }
        return outcome
    }

    private func step(now: Date, outcome: inout Outcome) throws {
        // 1. Repair.
        let repair = KernelRepair(namespace: namespace, pinRoot: pinRoot)
        do {
            outcome.repaired = try repair.repair()
            if !outcome.repaired.isEmpty {
                log("repaired \(outcome.repaired.sorted().joined(separator: " and ")) in \(namespace)")
                updateStatistics { for what in outcome.repaired { $0.repairs[what, default: 0] += 1 } }
            }
        } catch {
            outcome.errors.append("repair failed: \(error)")
        }

        // 2. Expiries.
        outcome.expired = try book.expire(now: now).count
        if interval % 360 == 1 { _ = try book.store.pruneHistory(olderThan: now.addingTimeInterval(-policy.enforce.history.timeInterval)) }

        // 3. Evidence.
        let instances = XDPBanSink(namespace: namespace, pinRoot: pinRoot).instances()
        outcome.observing = policy.mode == .observe
            || instances.contains { (try? $0.maps.limits())??.observe == true }
        var candidates: [BanCandidate] = []
        let found = try rateEvidence.read(from: instances.map(\.maps))
        let sources = sourceTracker.record(interval: interval, offenders: found.sources)
        let subnets = subnetTracker.record(interval: interval, offenders: found.subnets)
        let escalated = try EscalationEvidence(namespace: namespace)
            .subnets(ipv4Prefix: policy.ipv4SubnetPrefix, ipv6Prefix: policy.ipv6SubnetPrefix)
        candidates += escalated.map { BanCandidate(prefix: $0, origin: .escalation) }
        // A subnet is banned for its rate only on evidence from real hosts in it: at least
        // `subnetWitnesses` of its sources banned for their own rate (each verified by a handshake).
        // A flood forging addresses all over a victim's /24 never gets the /24 banned.
        if !subnets.promoted.isEmpty {
            let sourceBans = try book.store.activeBans(at: now).filter { $0.origin == .rateSource }
            for subnet in subnets.promoted {
                if sourceBans.filter({ subnet.contains($0.prefix) }).count >= Self.subnetWitnesses {
                    candidates.append(BanCandidate(prefix: subnet, origin: .rateSubnet))
                } else {
                    outcome.unverified += 1
                }
            }
        }
        var feedCandidates: [(feed: BanFeed, candidates: [BanCandidate])] = []
        for feed in feeds {
            do {
                let found = try feed.poll(now: now).filter { $0.length >= feed.shortestLength(ipv4: $0.isIPv4) }
                feedCandidates.append((feed, found.map { BanCandidate(prefix: $0, origin: feed.origin) }))
            } catch {
                outcome.errors.append("feed \(feed.origin): \(error)")
            }
            let figures = feed.figures
            updateStatistics { $0.feeds[feed.origin.rawValue] = figures }
        }
        // A source is banned for its rate only if it completed a handshake lately: forging a victim's
        // address can get the victim throttled, never banned.
        if !sources.promoted.isEmpty {
            let verified = try HandshakeEvidence(namespace: namespace).verifiedSources()
            for source in sources.promoted {
                if verified.contains(source) { candidates.append(BanCandidate(prefix: source, origin: .rateSource)) }
                else { outcome.unverified += 1 }
            }
        }

        // 4. Promotion: never inside the allowlist (the enforcer's policy's, and the one loaded into
        // each instance), never wider than its origin judges (a subnet at the policy's prefix, a feed
        // at its own), at most the cap, shared by every origin in the order above.
        var allowed = policy.allowlist
        for instance in instances {
            allowed += (try? instance.maps.allowlist.keys(as: gw_lpm_key.self).map(AddressPrefix.init(lpmKey:))) ?? []
        }
        func eligible(_ candidate: BanCandidate, shortest: Int) -> Bool {
            candidate.prefix.length >= shortest && candidate.prefix.listProblem == nil
                && !allowed.contains { $0.overlaps(candidate.prefix) }
        }
        let subnetLength = { (prefix: AddressPrefix) in prefix.isIPv4 ? self.policy.ipv4SubnetPrefix : self.policy.ipv6SubnetPrefix }
        var batches: [(schedule: BanSchedule, candidates: [BanCandidate])] = [
            (schedule, candidates.filter { eligible($0, shortest: subnetLength($0.prefix)) }),
        ]
        for (feed, found) in feedCandidates {
            let feedSchedule = BanSchedule(banFor: feed.banFor, maxBan: max(policy.enforce.maxBan, feed.banFor),
                                           history: policy.enforce.history)
            batches.append((feedSchedule, found.filter { eligible($0, shortest: feed.shortestLength(ipv4: $0.prefix.isIPv4)) }))
        }
        // Room: the per-interval cap, and a ceiling on enforced bans in force, so the loop never fills
        // the smaller of the two ban lists (nftables' `blocklist.size`, XDP's blocklist): a tenth of it
        // stays free for manual bans, and a full list never refuses an operator's.
        let ceiling = min(policy.blocklistSize, XDPMaps.blocklistCapacity) * 9 / 10
        let enforcedInForce = try book.store.counts(at: now).filter { $0.key.isEnforced }.reduce(0) { $0 + $1.value.applied }
        let allowedNow = outcome.observing ? policy.enforce.maxNewBansPerInterval
            : max(min(policy.enforce.maxNewBansPerInterval, ceiling - enforcedInForce), 0)
        var promotion = BanStore.Promotion()
        for batch in batches where !batch.candidates.isEmpty {
            let room = max(allowedNow - promotion.bans.count, 0)
            let promoted = try book.store.promote(batch.candidates, now: now, schedule: batch.schedule,
                                                  applied: !outcome.observing, limit: room)
            promotion.bans += promoted.bans
            promotion.alreadyBanned += promoted.alreadyBanned
            promotion.deferred += promoted.deferred
        }
        outcome.promoted = promotion.bans
        outcome.deferred = promotion.deferred.count
        updateStatistics { statistics in
            statistics.expiries += UInt64(outcome.expired)
            statistics.untracked += UInt64(sources.untracked + subnets.untracked)
            statistics.unverified += UInt64(outcome.unverified)
            for ban in promotion.bans {
                if outcome.observing { statistics.observedPromotions[ban.origin.rawValue, default: 0] += 1 }
                else { statistics.promotions[ban.origin.rawValue, default: 0] += 1 }
            }
            if !promotion.deferred.isEmpty {
                statistics.capHits += 1
                statistics.deferred += UInt64(promotion.deferred.count)
            }
        }

        // 5. Both layers hold every active ban. What they lacked beyond this interval's new bans
        // had been lost (a flush, a reboot, a crash between store and kernel): a repair. Reading
        // both layers whole costs about a second per 10,000 bans, so it is done when something
        // changed (a new ban, an expiry, a repair, the first interval) and otherwise once a minute,
        // which bounds how long a ban deleted by hand from one layer stays missing.
        let changed = !promotion.bans.isEmpty || outcome.expired > 0 || !outcome.repaired.isEmpty
        if !changed, let lastFullApply, now.timeIntervalSince(lastFullApply) < Self.reconcileEvery, now >= lastFullApply {
            return
        }
        let applied = try book.apply(now: now)
        if applied.errors.isEmpty { lastFullApply = now }
        outcome.written = applied.written
        let fresh = outcome.observing ? 0 : Set(promotion.bans.map(\.prefix)).count
        updateStatistics { statistics in
            for (layer, count) in applied.written where count > fresh {
                statistics.repairs["bans_\(layer.rawValue)", default: 0] += UInt64(count - fresh)
            }
        }
        for (layer, error) in applied.errors {
            outcome.errors.append("applying bans to \(layer): \(error)")
        }
    }
}
