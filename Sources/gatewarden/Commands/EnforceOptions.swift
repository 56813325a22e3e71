import ArgumentParser
import Foundation
import GatewardenEnforce
import GatewardenKernel

/// `--netns` and `--state-dir`: which namespace's bans, kept where. Shared by `enforce`, `bans`
/// and `serve`.
struct BanStateOptions: ParsableArguments {
    @OptionGroup var target: NamespaceOption

    var netns: String? { target.netns }

    @Option(help: ArgumentHelp("Where the ban store lives (SQLite; created 0700).",
                               discussion: "Each namespace keeps its own store in a folder under it named after the namespace. Default: $GATEWARDEN_STATE_DIR, else /var/lib/gatewarden.",
                               valueName: "dir"))
    var stateDir: String = Self.defaultDirectory

    /// `$GATEWARDEN_STATE_DIR`, else `/var/lib/gatewarden`.
    static var defaultDirectory: String {
        ProcessInfo.processInfo.environment["GATEWARDEN_STATE_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? BanStore.defaultDirectory
    }

    init() {}

    init(netns: String?, stateDir: String) {
        self.target = NamespaceOption()
        self.target.netns = netns
        self.stateDir = stateDir
    }

    func namespace() throws -> NetworkNamespace {
        try target.namespace()
    }

    /// The namespace's own folder: `DIR/host` or `DIR/netns/NAME`, so two namespaces' bans never mix.
    var directory: String {
        netns.map { "\(stateDir)/netns/\($0)" } ?? "\(stateDir)/host"
    }

    /// The store, created when missing (the namespace is checked first, so a mistyped name creates nothing).
    func openStore() throws -> BanStore {
        _ = try namespace()
        return try BanStore(directory: directory)
    }

    /// The store if one exists; readers and removals never create one.
    func existingStore() throws -> BanStore? {
        _ = try namespace()
        return try BanStore.existing(directory: directory)
    }
}
