import Foundation
import GatewardenCore
import GatewardenKernel

/// The XDP layer: the blocklist of every Gatewarden instance (interface) in a namespace. A ban is
/// held for `BlocklistHolder.manual` (an operator's) or `.enforce` (the loop's), beside the
/// policy's hold on the same prefix, each keeping its own lifetime. Expiries are written on the boot clock the program reads, from
/// the wall-clock deadline: after a reboot they are written again from the same deadlines.
public struct XDPBanSink: BanSink {
    public let layer = BanLayer.xdp
    public let namespace: NetworkNamespace
    public let pinRoot: String

    public init(namespace: NetworkNamespace, pinRoot: String = PinLayout.defaultRoot) {
        self.namespace = namespace
        self.pinRoot = pinRoot
    }

    /// The instances' maps; none when Gatewarden is not loaded in the namespace.
    public func instances() -> [(interface: String, maps: XDPMaps)] {
        PinLayout.interfaces(root: pinRoot, namespace: namespace).compactMap { interface in
            let layout = PinLayout(root: pinRoot, namespace: namespace, interface: interface)
            return (try? XDPMaps(layout: layout)).map { (interface, $0) }
        }
    }

    /// What every instance holds for enforce or manual bans; a prefix missing from one instance
    /// counts as missing.
    public func installed(now: Date) throws -> [AddressPrefix: Date?] {
        var common: [AddressPrefix: Date?]?
        for (_, maps) in instances() {
            var held: [AddressPrefix: Date?] = [:]
            let bootNow = BootClock.nanoseconds
            for (prefix, holds) in try maps.holds() {
                let expiries = [BlocklistHolder.enforce, .manual].compactMap { holds.expiry(of: $0) }
                guard !expiries.isEmpty else { continue }
                held[prefix] = expiries.contains(0) ? .some(nil)
                    : Self.wallClock(bootNanoseconds: expiries.max() ?? 0, bootNow: bootNow, now: now)
            }
            common = common.map { current in current.filter { held[$0.key] != nil } } ?? held
        }
        return common ?? [:]
    }

    @discardableResult
    public func apply(_ wanted: [BlocklistHolder: [AddressPrefix: Date?]], now: Date) throws -> Int {
        var written = 0
        for (_, maps) in instances() {
            try maps.changeBans { ledger in
                // The wall clock as the ledger read the boot clock: expiries convert between the two.
                let now = Date()
                for (holder, bans) in wanted {
                    for (prefix, expiry) in bans {
                        let current = ledger.bans[prefix]?.expiry(of: holder)
                            .map { $0 == 0 ? nil : Self.wallClock(bootNanoseconds: $0, bootNow: ledger.now, now: now) }
                        if let current, !Self.differs(current, expiry, now: now) { continue }
                        ledger.hold(prefix, for: holder, duration: expiry.map { .seconds(max($0.timeIntervalSince(now), 1)) })
                        written += 1
                    }
                }
            }
        }
        return written
    }

    public func lift(_ prefixes: [AddressPrefix], for holders: Set<BlocklistHolder>, lastHolder: Bool) throws {
        for (_, maps) in instances() {
            try maps.changeBans { ledger in
                for prefix in prefixes {
                    for holder in holders { ledger.release(prefix, for: holder) }
                }
            }
        }
    }

    static func wallClock(bootNanoseconds: UInt64, bootNow: UInt64, now: Date) -> Date {
        now.addingTimeInterval((Double(bootNanoseconds) - Double(bootNow)) / 1e9)
    }

    static func bootNanoseconds(of date: Date, now: Date, bootNow: UInt64) -> UInt64 {
        let seconds = max(date.timeIntervalSince(now), 0)
        return bootNow &+ UInt64(min(seconds, Double(UInt64.max / 4) / 1e9) * 1e9)
    }
}
