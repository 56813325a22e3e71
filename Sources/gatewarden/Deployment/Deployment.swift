import CGatewardenABI
import Foundation
import GatewardenBPF
import GatewardenKernel
import GatewardenPolicy

/// Installs and removes one Gatewarden instance: the XDP program on an interface and the
/// nftables table in the interface's namespace.
///
/// Everything that can be checked is checked before anything changes (the interface exists,
/// nftables accepts the ruleset in a dry run, the verifier accepts the program), and a fresh
/// install that fails half-way is rolled back, so a failed `load` leaves nothing behind.
struct Deployment {
    let namespace: NetworkNamespace
    let interface: String
    let layout: PinLayout

    static let program = EmbeddedBPF.gatewardenXdp
    static let programName = "gatewarden_xdp"

    init(namespace: NetworkNamespace, interface: String, pinRoot: String = PinLayout.defaultRoot) {
        self.namespace = namespace
        self.interface = interface
        self.layout = PinLayout(root: pinRoot, namespace: namespace, interface: interface)
    }

    /// What `install` did.
    struct Outcome: CustomStringConvertible {
        var replaced: Bool
        var programID: UInt32
        var mode: XDPMode
        var pins: String
        var interface: String
        var namespace: NetworkNamespace

        var description: String {
            let verb = replaced ? "replaced the XDP program on" : "attached XDP to"
            return "\(verb) '\(interface)' in \(namespace) (program id \(programID), \(mode.rawValue) mode); "
                + "pins in \(pins); nftables table inet \(NFTablesRuleset.tableName) applied"
        }
    }

    func install(policy: Policy, mode: XDPMode) throws -> Outcome {
        let interfaceIndex = try NetworkInterface.index(of: interface, in: namespace)
        let ruleset = NFTablesRuleset(policy: policy)
        let nft = try NFTables(namespace: namespace)
        try nft.run(ruleset.replaceTransaction, dryRun: true)

        let link = XDPLink(pinPath: layout.link)
        let replacing = link.exists
        if replacing, let current = try XDPInstance(layout: layout).mode(), current != mode {
            throw KernelError(operation: "'\(interface)' runs Gatewarden in \(current.rawValue) mode; "
                + "changing the mode needs `gatewarden unload` first")
        }

        let hadDirectory = FileManager.default.fileExists(atPath: layout.directory)
        try layout.createDirectory()
        do {
            let object = try BPFObject(elf: Self.program.bytes, name: Self.programName)
            try object.pinMaps(in: layout)
            try object.load()
            let programFD = try object.programDescriptor(named: Self.programName)
            let programID = try XDPQuery.programID(of: programFD)

            if replacing {
                try link.replaceProgram(with: programFD)
            } else {
                _ = try XDPLink.attach(programFD: programFD, interfaceIndex: interfaceIndex, interface: interface,
                                       mode: mode, namespace: namespace, pinPath: layout.link)
            }
            try verifyAttached(programID: programID, interfaceIndex: interfaceIndex)
            try configure(object: object, policy: policy, mode: mode, interfaceIndex: interfaceIndex)
            try nft.run(ruleset.replaceTransaction)
            return Outcome(replaced: replacing, programID: programID, mode: mode, pins: layout.directory,
                           interface: interface, namespace: namespace)
        } catch {
            if !replacing {
                _ = try? remove(keepingTable: true)
                if !hadDirectory { layout.removeEmptyDirectories() }
            }
            throw error
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

    /// Writes the policy's XDP configuration and the loader's record into the maps.
    private func configure(object: BPFObject, policy: Policy, mode: XDPMode, interfaceIndex: UInt32) throws {
        let ports = try BPFMap(borrowing: object.mapDescriptor(named: XDPInstance.MapName.ports))
        let protected = Set(policy.protectedPorts)
        try ports.updateAll(count: Int(GW_PORTS_ENTRIES)) { port in
            UInt8(protected.contains(UInt16(port)) ? GW_PORT_PROTECTED : 0)
        }

        var record = gw_loader_info()
        record.abi_version = UInt32(GW_ABI_VERSION)
        record.xdp_mode = mode == .native ? GW_XDP_MODE_NATIVE.rawValue : GW_XDP_MODE_GENERIC.rawValue
        record.ifindex = interfaceIndex
        record.attached_unix_ns = UInt64(Date().timeIntervalSince1970 * 1e9)
        withUnsafeMutableBytes(of: &record.ifname) { buffer in
            buffer.copyBytes(from: interface.utf8.prefix(buffer.count - 1))
        }
        let loader = try BPFMap(borrowing: object.mapDescriptor(named: XDPInstance.MapName.loader))
        try loader.update(record, at: UInt32(0))
    }

    /// Detaches the program, removes the pins `load` made and, when no other instance in the
    /// namespace remains, the nftables table. Returns what it removed.
    func remove(keepingTable: Bool = false) throws -> [String] {
        var removed: [String] = []
        let link = XDPLink(pinPath: layout.link)
        if link.exists {
            try link.detach()
            removed.append("XDP program on '\(interface)' (pin \(layout.link))")
        }
        let mapNames = try BPFObject(elf: Self.program.bytes, name: Self.programName).mapNames
        for name in mapNames where unlink(layout.map(name)) == 0 {
            removed.append("map pin \(layout.map(name))")
        }
        layout.removeEmptyDirectories()

        let othersRemain = !PinLayout.interfaces(root: layout.root, namespace: namespace).isEmpty
        if !keepingTable && !othersRemain {
            let nft = try NFTables(namespace: namespace)
            if try nft.tableExists(family: NFTablesRuleset.family, name: NFTablesRuleset.tableName) {
                try nft.run(NFTablesRuleset.deleteCommand)
                removed.append("nftables table \(NFTablesRuleset.family) \(NFTablesRuleset.tableName) in \(namespace)")
            }
        }
        guard !removed.isEmpty else {
            throw KernelError(operation: "Gatewarden is not loaded on '\(interface)' in \(namespace) "
                + "(nothing at \(layout.directory))")
        }
        return removed
    }
}
