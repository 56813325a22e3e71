import ArgumentParser
import Foundation
import GatewardenCore
import GatewardenEnforce
import GatewardenKernel
import GatewardenDataPlane

/// `gatewarden bans`: list, add and remove bans, in the store and both layers at once.
struct Bans: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, add and remove bans (XDP blocklist, nftables ban set and the ban store at once).",
        subcommands: [List.self, Add.self, Remove.self],
        defaultSubcommand: List.self
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every ban in force: prefix, origin, layers, created, expires.")

        @OptionGroup var state: BanStateOptions

        @Flag(help: "Print a JSON list of objects: prefix, origin, layers, created, expires, offence, applied.")
        var json = false

        func run() throws {
            let now = Date()
            let listings = try state.existingStore().map { store in
                try BanBook(store: store, sinks: BanBook.sinks(for: try state.namespace())).list(now: now)
            } ?? []
            if json {
                print(BanListing.json(listings))
            } else if listings.isEmpty {
                print("no bans in \(try state.namespace())")
            } else {
                for listing in listings { print(BanListing.line(listing, now: now)) }
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ban a source network in both layers, for a time or until removed.",
            discussion: "The ban is stored first, so it comes back after a restart or a reboot, then written to XDP and nftables.")

        @Argument(help: ArgumentHelp("The network, e.g. 198.51.100.0/24 or 2001:db8::/48 (host bits zero, not /0).", valueName: "cidr"))
        var cidr: String

        @Option(name: .customLong("for"), help: ArgumentHelp("How long: 90s, 30m, 1h, 7d; omitted, until removed.", valueName: "duration"))
        var duration: DurationArgument?

        @OptionGroup var state: BanStateOptions

        @OptionGroup var lock: ChangeLockOptions

        func run() throws {
            try BanChange.add(cidr, for: duration, state: state, lock: lock, command: "bans add")
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lift the bans on a source network (every origin but the policy's) in both layers.")

        @Argument(help: ArgumentHelp("The banned network, exactly as listed.", valueName: "cidr"))
        var cidr: String

        @OptionGroup var state: BanStateOptions

        @OptionGroup var lock: ChangeLockOptions

        func run() throws {
            try BanChange.remove(cidr, state: state, lock: lock, command: "bans remove")
        }
    }
}

/// What `bans add/remove` (and their aliases `block`/`unblock`) do.
enum BanChange {
    static func add(_ cidr: String, for duration: DurationArgument?, state: BanStateOptions, lock: ChangeLockOptions, command: String) throws {
        let prefix = try BanArgument.prefix(cidr)
        if duration?.isZero == true {
            throw ValidationError("--for 0s bans nothing: give a length such as 30m, or leave it out for a ban until removed")
        }
        let namespace = try state.namespace()
        let now = Date()
        let ban = Ban(prefix: prefix, origin: .manual, created: now,
                      expires: duration.map { now.addingTimeInterval(Double($0.value.components.seconds)) })
        let book = BanBook(store: try state.openStore(), sinks: BanBook.sinks(for: namespace))
        let result = try lock.holding(namespace, command: command) { try book.add(ban, now: now) }
        for (layer, error) in result.errors.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            FileHandle.standardError.write(Data("gatewarden: stored, but not in \(layer) yet: \(error)\n".utf8))
        }
        print("banned \(prefix) in \(namespace)" + (duration.map { " for \($0.text)" } ?? " until removed"))
    }

    static func remove(_ cidr: String, state: BanStateOptions, lock: ChangeLockOptions, command: String) throws {
        let prefix = try BanArgument.prefix(cidr)
        let namespace = try state.namespace()
        let removed: [Ban] = try state.existingStore().map { store in
            let book = BanBook(store: store, sinks: BanBook.sinks(for: namespace))
            return try lock.holding(namespace, command: command) { try book.remove(prefix, now: Date()) }
        } ?? []
        let policyHolds = XDPBanSink(namespace: namespace).instances().contains { instance in
            (try? instance.maps.holds()[prefix]?.origins.contains(.policy)) == true
        }
        guard !removed.isEmpty else {
            throw ValidationError("\(prefix) is not banned by `bans add` or enforce in \(namespace)"
                + (policyHolds ? " (the policy bans it: load a policy without it)" : ""))
        }
        print("removed the ban on \(prefix) (\(Set(removed.map(\.origin.rawValue)).sorted().joined(separator: ", ")))"
            + (policyHolds ? "; the policy still bans it until a policy without it is loaded" : ""))
    }
}

/// A CIDR given to `bans`: a valid network with host bits zero, never all addresses.
enum BanArgument {
    static func prefix(_ text: String) throws -> AddressPrefix {
        let prefix: AddressPrefix
        do { prefix = try AddressPrefix(text) } catch { throw ValidationError("\(error)") }
        if let problem = prefix.listProblem { throw ValidationError("'\(text)': \(problem)") }
        return prefix
    }
}

/// How bans print.
enum BanListing {
    static func line(_ listing: BanBook.Listing, now: Date) -> String {
        let ban = listing.ban
        let expires = ban.expires.map { "expires \(format($0)) (\(Int($0.timeIntervalSince(now)))s left)" } ?? "until removed"
        let layers = listing.applied ? (listing.layers.isEmpty ? "in no layer yet" : "in " + listing.layers.map(\.rawValue).joined(separator: "+"))
            : "observe mode: not applied"
        return "\(ban.prefix) \(ban.origin) \(layers), created \(format(ban.created)), \(expires), offence \(ban.offence)"
    }

    static func json(_ listings: [BanBook.Listing]) -> String {
        let objects: [[String: Any]] = listings.map { listing in
            [
                "prefix": listing.ban.prefix.description,
                "origin": listing.ban.origin.rawValue,
                "layers": listing.layers.map(\.rawValue),
                "created": format(listing.ban.created),
                "expires": listing.ban.expires.map(format) as Any? ?? NSNull(),
                "offence": listing.ban.offence,
                "applied": listing.applied,
            ]
        }
        let data = (try? JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func format(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
