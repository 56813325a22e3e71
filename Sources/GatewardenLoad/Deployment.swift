import Foundation
import GatewardenBPF
import GatewardenKernel
import GatewardenPolicy
import GatewardenDataPlane

/// Installs and removes one Gatewarden instance: the XDP program on an interface and the
/// nftables table in the interface's namespace.
///
/// Everything that can be checked is checked before anything changes (the interface exists,
/// nftables accepts the ruleset in a dry run, the verifier accepts the program), and a load that
/// fails half-way is rolled back (`InstallRollback`): the previous program, what the maps held,
/// only the pins it created removed. nftables changes last, in one transaction, once all else worked.
public struct Deployment {
    public let namespace: NetworkNamespace
    public let interface: String
    public let layout: PinLayout

    public static let program = EmbeddedBPF.gatewardenXdp
    public static let programName = XDPProgram.name

    /// The maps the program pins: what `unload` may remove, and nothing else.
    public static func mapNames() throws -> [String] {
        try BPFObject(elf: program.bytes, name: programName).mapNames
    }

    public init(namespace: NetworkNamespace, interface: String, pinRoot: String = PinLayout.defaultRoot) {
        self.namespace = namespace
        self.interface = interface
        self.layout = PinLayout(root: pinRoot, namespace: namespace, interface: interface)
    }

    /// What `install` did.
    public struct Outcome: CustomStringConvertible {
        public var replaced: Bool
        /// The program running was this one: the policy was applied to it, nothing swapped.
        public var inPlace: Bool
        public var programID: UInt32
        public var mode: XDPMode
        public var pins: String
        public var interface: String
        public var namespace: NetworkNamespace

        public var description: String {
            let verb = inPlace ? "re-applied the policy to the XDP program on"
                : replaced ? "replaced the XDP program on" : "attached XDP to"
            return "\(verb) '\(interface)' in \(namespace) (program id \(programID), \(mode.rawValue) mode); "
                + "pins in \(pins); nftables table inet \(NFTablesRuleset.tableName) applied"
        }
    }

    /// Identifies the program object this binary carries (FNV-1a over its bytes), recorded at each
    /// attach: a later load of the same object only re-applies the policy.
    public static let programDigest: UInt64 = program.bytes.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }

    /// Applies `policy`. `reloadProgram` verifies and swaps the program even when the one running
    /// is this binary's (otherwise such a load only rewrites what the program reads).
    /// `source`, when given, is recorded once the load succeeded: what the enforce loop's repair loads again.
    public func install(policy: Policy, source: PolicySource? = nil, mode requested: XDPModeChoice, force: Bool = false,
                        reloadProgram: Bool = false) throws -> Outcome {
        let interfaceIndex = try NetworkInterface.index(of: interface, in: namespace)
        let handshake = try SynproxyHost.handshakeOptions(interface: interface, in: namespace)
        let ruleset = try Self.checkedRuleset(policy: policy, namespace: namespace, handshake: handshake)

        warnAboutBanSetChanges(policy: policy)
        try mountFilesystemIfMissing()

        let link = XDPLink(pinPath: layout.link)
        try dropSeveredLink(link, interfaceIndex: interfaceIndex)
        let replacing = link.exists
        let currentMode = replacing ? try XDPInstance(layout: layout).mode() : nil
        if let currentMode, let fixed = requested.fixedMode, currentMode != fixed {
            throw KernelError(operation: "'\(interface)' runs Gatewarden in \(currentMode.rawValue) mode; "
                + "changing the mode needs `gatewarden unload` first")
        }

        // A running program keeps its mode; a fresh attach tries the interface's best (XDPModeChoice).
        let driver = try? NetworkInterface.driver(of: interface, in: namespace)
        // Until nftables holds the synproxy rules that complete a cookie's handshake, XDP answers no SYN:
        // the limits go in without cookies, and cookies only once the table is committed.
        let limits = policy.xdpLimits
        let ethernetAddress = (try? NetworkInterface.ethernetAddress(of: interface, in: namespace)) ?? nil // for cookies only
        let object = try BPFObject(elf: Self.program.bytes, name: Self.programName)
        try sizeMaps(object, policy: policy)
        // Before anything changes: maps pinned by an earlier version with another layout are
        // replaced if they hold nothing worth keeping, and refuse the load otherwise.
        let upgrade = try PinnedMapUpgrade(object: object, layout: layout)
        try checkBanRoom(policy: policy, object: object)

        var rollback = try InstallRollback(layout: layout, mapNames: object.mapNames)
        try layout.createDirectory()
        do {
            // Set once every check has passed and before XDP or nftables change: where /proc/sys is
            // read-only, the load stops here with nothing changed.
            if policy.mode == .enforce {
                try rollback.changingSysctl(SynproxyHost.looseTracking, in: namespace)
                if let record = try SynproxyHost.requireStrictTracking(in: namespace) { rollback.created(record) }
            }
            let programID: UInt32, mode: XDPMode
            // A replaced program keeps the request recorded when it was attached (auto on a veth recorded
            // generic: a later `load` with the default must not turn that into a mode mismatch).
            let loaderRecord = replacing ? (try? XDPMaps(layout: layout).loaderInfo()) ?? nil : nil
            var recordedRequest = requested == .auto
                ? loaderRecord.flatMap { XDPModeChoice(abiValue: $0.requested_mode) } ?? requested
                : requested
            let inPlace = replacing && !reloadProgram && upgrade.isEmpty && loaderRecord?.program_digest == Self.programDigest
            if inPlace {
                // The program running came from this very object: only what it reads changes, with no
                // verifier run (most of a load's time) and no swap.
                try XDPMaps(layout: layout).apply(limits, allowlist: policy.allowlist, blocklist: policy.blocklist)
                programID = try link.info().programID
                mode = currentMode ?? .native
            } else {
                try object.pinMaps(at: layout.map)
                try upgrade.prepare(object)
                try object.load()
                let programFD = try object.programDescriptor(named: Self.programName)
                programID = try XDPQuery.programID(of: programFD)

                let maps = try XDPMaps(object: object)
                try upgrade.carryOver(into: maps)
                // Limits first: the new program must never run a packet without them.
                try maps.apply(limits, allowlist: policy.allowlist, blocklist: policy.blocklist)
                if replacing {
                    try rollback.replacing(link)
                    try link.replaceProgram(with: programFD)
                    mode = currentMode ?? .native
                } else {
                    (mode, recordedRequest) = try attach(programFD: programFD, interfaceIndex: interfaceIndex,
                                                         requested: requested, driver: driver, force: force)
                    rollback.attached(link)
                }
                try maps.recordAttach(mode: mode, requested: recordedRequest.abiValue, interface: interface, interfaceIndex: interfaceIndex,
                                      wallClockNanoseconds: UInt64(Date().timeIntervalSince1970 * 1e9), programDigest: Self.programDigest)
            }
            try verifyAttached(programID: programID, interfaceIndex: interfaceIndex)
            // nftables last: its transaction is the one step that cannot be undone, so it runs once every
            // other step has worked, and a failure before it leaves the table as it was.
            // A fresh context (no dry run in it): libnftables 1.0.6 can abort printing an error when a
            // context that ran a dry run is reused (its cache points into the earlier command buffer).
            // The state sets installed now decide which are kept (see NFTablesRuleset.stateSets).
            let nft = try NFTables(namespace: namespace)
            let installed = try nft.setShapes(family: NFTablesRuleset.family, table: NFTablesRuleset.tableName)
            try nft.run(ruleset.applyTransaction(installed: installed))
            try upgrade.commit()
            // After the one step that cannot be undone, a failure here is said, not thrown: nftables'
            // synproxy keeps answering SYNs, as in native mode.
            if let cookies = synCookies(policy: policy, handshake: handshake, mode: mode, ethernetAddress: ethernetAddress) {
                var answering = limits
                answering.synCookies = cookies
                do {
                    try XDPMaps(layout: layout).apply(answering, allowlist: policy.allowlist, blocklist: policy.blocklist)
                } catch {
                    FileHandle.standardError.write(Data(("gatewarden: loaded, but XDP does not answer SYNs (nftables' "
                        + "synproxy does): \(error)\n").utf8))
                }
            }
            if policy.mode == .observe { SynproxyHost.restoreLooseTrackingOrWarn(in: namespace) }
            if let source {
                do { try LoadedPolicyRecord(namespace: namespace).write(source) } catch {
                    FileHandle.standardError.write(Data(("gatewarden: loaded, but could not record the policy for repairs: "
                        + "\(error)\n").utf8))
                }
            }
            return Outcome(replaced: replacing, inPlace: inPlace, programID: programID, mode: mode, pins: layout.directory,
                           interface: interface, namespace: namespace)
        } catch {
            upgrade.abandon()
            rollback.undo()
            throw error
        }
    }

    /// Pins need bpffs: mounts it where it is missing (a fresh machine has none) and says so.
    private func mountFilesystemIfMissing() throws {
        guard let bpffs = layout.managedFilesystem, try bpffs.mountIfMissing() else { return }
        var note = "gatewarden: mounted bpffs at \(bpffs.path) (it was not mounted)\n"
        if BPFFilesystem.inPrivateMountNamespace {
            note += "gatewarden: this mount namespace is not the host's (ip netns exec, unshare -m): "
                + "the pins, and so the protection, last only as long as it does; from the host, use --netns\n"
        }
        FileHandle.standardError.write(Data(note.utf8))
    }

    /// A link whose interface was deleted (or deleted and recreated) is severed for good: it can no
    /// longer be updated. Its pin goes; the maps stay, so bans and counters carry over to the new
    /// attachment.
    private func dropSeveredLink(_ link: XDPLink, interfaceIndex: UInt32) throws {
        guard link.exists else { return }
        let attachedTo = (try? link.info())?.interfaceIndex ?? 0
        guard attachedTo != interfaceIndex else { return }
        guard unlink(link.pinPath) == 0 else { throw KernelError.fromErrno("remove the severed link pin \(link.pinPath)") }
        FileHandle.standardError.write(Data(("gatewarden: the XDP link pinned for '\(interface)' was severed (the interface "
            + "was deleted); attaching anew, keeping the maps\n").utf8))
    }

    /// The ruleset for `policy`, checked by the kernel (a dry run) before anything changes.
    ///
    /// The conntrack cap is a share of nf_conntrack_max, which exists once nf_conntrack is loaded;
    /// the first dry run (its `ct` rules) loads the module when it is not, then the value is read.
    /// That first run leaves the lists out: the second checks them, and with 50,000 entries each
    /// run costs most of a second.
    public static func checkedRuleset(policy: Policy, namespace: NetworkNamespace,
                               handshake: HandshakeOptions = .linuxDefault) throws -> NFTablesRuleset {
        var withoutLists = policy
        withoutLists.allowlist = []
        withoutLists.blocklist = []
        try NFTables(namespace: namespace).run(NFTablesRuleset(policy: withoutLists, handshake: handshake).applyTransaction, dryRun: true)
        let ruleset = NFTablesRuleset(policy: policy, conntrackMax: try Conntrack.maximum(in: namespace), handshake: handshake)
        if policy.conntrackCapPercent != nil && ruleset.conntrackCap == nil {
            FileHandle.standardError.write(Data("gatewarden: nf_conntrack is not loaded: no conntrack cap rule\n".utf8))
        }
        try NFTables(namespace: namespace).run(ruleset.applyTransaction, dryRun: true)
        return ruleset
    }

    /// Ban sets are kept across applies so bans survive; nft leaves an existing set's size and
    /// timeout as they are, so say when the policy asks for others.
    private func warnAboutBanSetChanges(policy: Policy) {
        guard let listing = try? NFTables(namespace: namespace).run("list sets \(NFTablesRuleset.family)", terse: true) else { return }
        let wanted = ["size \(policy.blocklistSize)", "timeout \(policy.blocklistTimeout)"]
        for name in ["block_v4", "block_v6"] {
            guard let range = listing.range(of: "set \(name) {") else { continue }
            let body = listing[range.upperBound...].prefix { $0 != "}" }
            if !wanted.allSatisfy({ body.contains($0) }) {
                FileHandle.standardError.write(Data(("gatewarden: ban set \(name) keeps its size and timeout until "
                    + "`gatewarden unload` (bans are kept across loads)\n").utf8))
            }
        }
    }

    /// The policy's bans and the manual and enforced ones a load keeps must fit the blocklist:
    /// checked before anything changes, so a load refused for room leaves every ban as it was.
    private func checkBanRoom(policy: Policy, object: BPFObject) throws {
        guard let pinned = try? BPFMap(pinnedAt: layout.map(XDPMaps.Name.blocklist)) else { return }
        let capacity = try object.mapDefinition(named: XDPMaps.Name.blocklist).maxEntries
        let count = try XDPMaps.bansAfterLoading(policyBans: policy.blocklist, into: pinned)
        guard count <= Int(capacity) else {
            throw KernelError(operation: "the blocklist has room for \(capacity) bans, not the \(count) this load would "
                + "hold (the policy's \(policy.blocklist.count) and those kept from `block`); nothing was changed")
        }
    }

    /// Map capacities come from the policy when the maps are first created; pinned maps keep theirs.
    private func sizeMaps(_ object: BPFObject, policy: Policy) throws {
        for (name, wanted) in [(XDPMaps.Name.sources, policy.xdpSourcesMapSize), (XDPMaps.Name.subnets, policy.xdpSubnetsMapSize)] {
            if let pinned = try? BPFMap(pinnedAt: layout.map(name)) {
                try object.setMaxEntries(pinned.info.maxEntries, ofMap: name)
                if pinned.info.maxEntries != UInt32(wanted) {
                    FileHandle.standardError.write(Data(("gatewarden: map \(name) keeps \(pinned.info.maxEntries) entries "
                        + "until `gatewarden unload` (its state is kept across loads)\n").utf8))
                }
            } else {
                try object.setMaxEntries(UInt32(wanted), ofMap: name)
            }
        }
    }

    /// The interface must now run exactly the program just loaded: anything else is a failure.
    private func verifyAttached(programID: UInt32, interfaceIndex: UInt32) throws {
        let attached = try XDPQuery.attachedProgramID(interfaceIndex: interfaceIndex, namespace: namespace)
        guard attached == programID else {
            throw KernelError(operation: "'\(interface)' runs XDP program id \(attached.map(String.init) ?? "none") "
                + "after attaching program id \(programID)")
        }
    }

    /// What the XDP program answers SYNs with, or nil to leave them to nftables' synproxy. It answers
    /// where its XDP_TX is known to reach the wire: generic mode (the kernel transmits the frame), on an
    /// Ethernet interface (its frames are what the program parses), in enforce mode. In native mode XDP_TX
    /// depends on the driver (on veth the peer drops or loses the frames unless it runs NAPI, which the
    /// program cannot see), so native mode keeps synproxy answering until load can ask the driver (the
    /// netdev family's xdp-features; libbpf 1.1 cannot).
    private func synCookies(policy: Policy, handshake: HandshakeOptions, mode: XDPMode,
                            ethernetAddress: [UInt8]?) -> XDPLimits.SynCookies? {
        guard mode == .generic, let ethernetAddress, ethernetAddress.first.map({ $0 & 1 == 0 }) == true,
              ethernetAddress.contains(where: { $0 != 0 }) else { return nil }
        return policy.xdpLimits(handshake: handshake, interfaceMAC: ethernetAddress).synCookies
    }

    /// Attaches in the requested mode and returns the mode and the request to record. `auto` takes
    /// generic on veth, saying why (recorded as a generic request: chosen, not fallen back to), and
    /// otherwise tries native and falls back to generic, saying so (recorded as auto, which the
    /// mode-mismatch alert watches). `force` first removes an XDP program that is not Gatewarden's.
    private func attach(programFD: Int32, interfaceIndex: UInt32, requested: XDPModeChoice, driver: String?,
                        force: Bool) throws -> (XDPMode, XDPModeChoice) {
        if force, let foreign = try XDPQuery.attachedProgramID(interfaceIndex: interfaceIndex, namespace: namespace) {
            try XDPQuery.detachForeignProgram(interfaceIndex: interfaceIndex, namespace: namespace)
            FileHandle.standardError.write(Data(
                "gatewarden: --force: detached XDP program id \(foreign) from '\(interface)'\n".utf8))
        }
        func attach(_ mode: XDPMode) throws {
            _ = try XDPLink.attach(programFD: programFD, interfaceIndex: interfaceIndex, interface: interface,
                                   mode: mode, namespace: namespace, pinPath: layout.link)
        }
        let first = requested.firstMode(driver: driver)
        guard requested == .auto else {
            try attach(first)
            return (first, requested)
        }
        if first == .generic {
            try attach(.generic)
            FileHandle.standardError.write(Data(("gatewarden: '\(interface)' is a veth: generic mode (native XDP on veth "
                + "copies every frame its peer built, and cannot send a SYN cookie back); --xdp-mode native forces it\n").utf8))
            return (.generic, .generic)
        }
        do {
            try attach(.native)
            return (.native, .auto)
        } catch let nativeFailure as KernelError where nativeFailure.errno != EBUSY && nativeFailure.errno != EEXIST {
            let reason = String(describing: nativeFailure).split(separator: "\n").first ?? ""
            FileHandle.standardError.write(Data("gatewarden: \(reason); falling back to generic mode\n".utf8))
            try attach(.generic)
            return (.generic, .auto)
        }
    }

    /// Detaches the program, removes the pins `load` made and, when no other instance in the
    /// namespace remains, the nftables table. Returns what it removed.
    public func remove() throws -> [String] {
        // Without bpffs no pin can be seen, this instance's or another's: not loaded here, and the
        // table, which other instances may still need, stays.
        if let bpffs = layout.managedFilesystem, !bpffs.isMounted {
            throw KernelError(operation: "Gatewarden is not loaded on '\(interface)' in \(namespace) (\(layout.absence))")
        }
        var removed: [String] = []
        let link = XDPLink(pinPath: layout.link)
        if link.exists {
            try link.detach()
            removed.append("XDP program on '\(interface)' (pin \(layout.link))")
        }
        let mapNames = try Self.mapNames()
        for name in mapNames where unlink(layout.map(name)) == 0 {
            removed.append("map pin \(layout.map(name))")
        }
        for path in PinnedMapUpgrade.leftovers(in: layout, mapNames: mapNames) where unlink(path) == 0 {
            removed.append("map pin \(path) (left by an interrupted upgrade)")
        }
        layout.removeEmptyDirectories()

        let othersRemain = !PinLayout.interfaces(root: layout.root, namespace: namespace).isEmpty
        if !othersRemain {
            let nft = try NFTables(namespace: namespace)
            if try nft.tableExists(family: NFTablesRuleset.family, name: NFTablesRuleset.tableName) {
                try nft.run(NFTablesRuleset.deleteCommand)
                removed.append("nftables table \(NFTablesRuleset.family) \(NFTablesRuleset.tableName) in \(namespace)")
            }
            SynproxyHost.restoreLooseTrackingOrWarn(in: namespace)
            try? LoadedPolicyRecord(namespace: namespace).remove()
        }
        guard !removed.isEmpty else {
            throw KernelError(operation: "Gatewarden is not loaded on '\(interface)' in \(namespace) (\(layout.absence))")
        }
        return removed
    }
}
