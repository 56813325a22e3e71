import ArgumentParser
import Foundation
import GatewardenKernel
import GatewardenPolicy
import GatewardenCore
import GatewardenDataPlane
import GatewardenLoad

/// `gatewarden persist`: makes the protection come back at boot.
struct Persist: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the rendered ruleset, the policy and a systemd unit that re-applies it all at boot.",
        discussion: """
        Writes DIRECTORY/policy.yaml (the policy), DIRECTORY/gatewarden.nft (the ruleset as rendered now, for \
        reference and review) and /etc/systemd/system/gatewarden@.service, a unit that runs `gatewarden load` for \
        an interface at boot, XDP included. Enable it with `systemctl enable gatewarden@IF`. With --dry-run it \
        prints what it would write instead.
        """
    )

    @OptionGroup var policyOptions: PolicyOptions

    @Option(help: ArgumentHelp("Where the policy and the rendered ruleset go.", valueName: "directory"))
    var directory = "/etc/gatewarden"

    @Option(help: ArgumentHelp("Where the systemd unit goes.", valueName: "directory"))
    var unitDirectory = "/etc/systemd/system"

    @Option(help: "XDP mode the unit loads with.")
    var xdpMode: XDPModeChoice = .auto

    @Flag(help: "Print the files instead of writing them.")
    var dryRun = false

    func run() throws {
        let policyText: String
        let policy: Policy
        do {
            policy = try policyOptions.load()
            policyText = try policyOptions.policy.map { try String(contentsOfFile: $0, encoding: .utf8) }
                ?? "# The built-in default policy (docs/policy.md): every key keeps its default.\n{}\n"
        } catch let problems as PolicyProblems {
            FileHandle.standardError.write(Data("\(problems)\n".utf8))
            throw ExitCode(1)
        }
        let ruleset = NFTablesRuleset(policy: policy, conntrackMax: try Conntrack.maximum(in: .current)).text
        // The binary running now, by its real path: argv[0] may be a bare name found in PATH, or relative.
        let binary = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let files = [
            ("\(directory)/policy.yaml", policyText),
            ("\(directory)/gatewarden.nft", "# Rendered by `gatewarden persist`; `gatewarden load` applies the policy itself.\n" + ruleset),
            ("\(unitDirectory)/gatewarden@.service", unit(binary: binary)),
        ]
        for (path, contents) in files {
            if dryRun {
                print("# \(path)\n\(contents)")
            } else {
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                        withIntermediateDirectories: true)
                try contents.write(toFile: path, atomically: true, encoding: .utf8)
                print("wrote \(path)")
            }
        }
        if !dryRun { print("enable with: systemctl daemon-reload && systemctl enable --now gatewarden@INTERFACE") }
    }

    private func unit(binary: String) -> String {
        """
        # Written by `gatewarden persist`. Re-applies Gatewarden's policy (nftables and XDP) at boot.
        [Unit]
        Description=Gatewarden kernel rate limiting on %i
        Documentation=https://github.com/gatewarden/gatewarden
        # Early, like nftables.service: protection is in place before the network comes up, and after the
        # distribution's own ruleset (whose `flush ruleset` would otherwise remove Gatewarden's table).
        DefaultDependencies=no
        BindsTo=sys-subsystem-net-devices-%i.device
        After=sys-subsystem-net-devices-%i.device local-fs.target nftables.service
        Wants=network-pre.target
        Before=network-pre.target shutdown.target
        Conflicts=shutdown.target

        [Service]
        Type=oneshot
        RemainAfterExit=yes
        ExecStart=\(binary) load --interface %i --xdp-mode \(xdpMode.rawValue) --policy \(directory)/policy.yaml
        # The programs stay attached and the table stays loaded when this unit stops; unloading is explicit.
        ExecStop=/bin/true
        # What loading needs, and nothing more: BPF programs and maps, netlink for nftables and XDP,
        # pins in the host's bpffs (mounted by systemd at boot; this unit's private mounts would not outlive it).
        CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_SYS_ADMIN
        AmbientCapabilities=
        NoNewPrivileges=yes
        ProtectSystem=strict
        ReadWritePaths=/sys/fs/bpf
        # The per-namespace change lock (ChangeLock): /run is read-only under ProtectSystem=strict. Kept when
        # the unit stops, since every gatewarden command and every instance of this unit shares it.
        RuntimeDirectory=gatewarden
        RuntimeDirectoryMode=0700
        RuntimeDirectoryPreserve=yes
        ProtectHome=yes
        PrivateTmp=yes
        ProtectControlGroups=yes
        ProtectKernelModules=no
        ProtectClock=yes
        ProtectHostname=yes
        RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6
        RestrictRealtime=yes
        LockPersonality=yes
        SystemCallArchitectures=native

        [Install]
        WantedBy=multi-user.target

        """
    }
}
