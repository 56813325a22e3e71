import ArgumentParser
import Foundation
import GatewardenKernel
import CGatewardenABI
import GatewardenCore
import GatewardenDataPlane
import GatewardenLoad

/// `gatewarden status`: what runs where, with which limits.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show each Gatewarden instance: program, XDP mode, enforce or observe, attach time, map fill and active limits."
    )

    @OptionGroup var target: NamespaceOption

    func run() throws {
        let namespace = try target.namespace()
        let interfaces = PinLayout.interfaces(namespace: namespace)
        guard !interfaces.isEmpty else {
            let bpffs = BPFFilesystem()
            print("Gatewarden is not loaded in \(namespace)" + (bpffs.isMounted ? "" : " (no bpffs at \(bpffs.path), where its pins live)"))
            return
        }
        for interface in interfaces {
            print(try report(XDPInstance(layout: PinLayout(namespace: namespace, interface: interface))))
        }
    }

    private func report(_ instance: XDPInstance) throws -> String {
        let maps = try instance.maps()
        let link = try? instance.link.info()
        let loader = try maps.loaderInfo()
        var lines = ["\(instance.layout.interface) (\(instance.layout.namespace)):"]
        if let link, link.interfaceIndex != 0 {
            let requested = loader.flatMap { XDPModeChoice(abiValue: $0.requested_mode) }.map { " (requested \($0.rawValue))" } ?? ""
            lines.append("  program:   id \(link.programID), link id \(link.linkID), \(loader.flatMap { XDPMode(abiValue: $0.xdp_mode) }?.rawValue ?? "unknown") mode\(requested)")
        } else {
            lines.append("  program:   NOT ATTACHED (pins remain in \(instance.layout.directory))")
        }
        if let loader {
            let attached = Date(timeIntervalSince1970: Double(loader.attached_unix_ns) / 1e9)
            lines.append("  attached:  \(attached.formatted(.iso8601))")
        }
        if let limits = try maps.limits() {
            lines.append(limits.observe
                ? "  mode:      observe (over a limit: counted as would_drop and passed; bans still drop)"
                : "  mode:      enforce")
            lines.append("  limits:    per source \(limits.source), per subnet \(limits.subnet) "
                + "(IPv4 /\(limits.ipv4SubnetPrefix), IPv6 /\(limits.ipv6SubnetPrefix))")
            lines.append("  ports:     \(limits.protectedPorts.map(String.init).joined(separator: ", "))")
            lines.append(limits.synCookies == nil
                ? "  SYNs:      answered by nftables' synproxy"
                : "  SYNs:      answered by the XDP program with SYN cookies (the table's synproxy-ack completes them)")
        }
        let allowed = try maps.allowlist.keys(as: gw_lpm_key.self).map(AddressPrefix.init(lpmKey:))
        lines.append("  allowlist: \(allowed.isEmpty ? "empty" : allowed.map(\.description).joined(separator: ", "))")
        let now = BootClock.nanoseconds
        let bans = try maps.bans().sorted { $0.prefix.description < $1.prefix.description }.map { ban in
            let origins = ban.origins.sorted { $0.rawValue < $1.rawValue }.map(\.description).joined(separator: "+")
            return ban.expiresBootNanoseconds == 0 ? "\(ban.prefix) (\(origins))"
                : "\(ban.prefix) (\(origins), \(ban.expiresBootNanoseconds > now ? (ban.expiresBootNanoseconds - now) / 1_000_000_000 : 0)s left)"
        }
        lines.append("  blocklist: \(bans.isEmpty ? "empty" : bans.joined(separator: ", "))")
        var fill: [String] = []
        for map in [maps.sources, maps.subnets, maps.offenders] {
            fill.append("\(map.info.name) \(try maps.entries(of: map))/\(map.info.maxEntries)")
        }
        lines.append("  maps:      " + fill.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }
}
