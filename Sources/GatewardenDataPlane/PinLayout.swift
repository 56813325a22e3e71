#if canImport(Glibc)
import Glibc
import GatewardenKernel
#endif

/// Where one Gatewarden instance keeps its BPF objects in the host's bpffs.
///
/// Pins name the namespace and the interface, so several instances never clash:
///
///     /sys/fs/bpf/gatewarden/host/eth0/{link,gw_stats,gw_sources,...}
///     /sys/fs/bpf/gatewarden/netns/gw-lab/veth0/{link,...}
///
/// The pinned link keeps the program attached after the loader exits; the pinned maps
/// keep counters, limits and bans across reloads and exporter restarts.
public struct PinLayout: Sendable, Equatable {
    public static let defaultRoot = "\(BPFFilesystem.defaultPath)/gatewarden"

    public let root: String
    public let namespace: NetworkNamespace
    public let interface: String

    public init(root: String = PinLayout.defaultRoot, namespace: NetworkNamespace, interface: String) {
        self.root = root
        self.namespace = namespace
        self.interface = interface
    }

    /// The folder of every instance in the namespace.
    public static func namespaceDirectory(root: String = defaultRoot, namespace: NetworkNamespace) -> String {
        if let name = namespace.name { return "\(root)/netns/\(name)" }
        return "\(root)/host"
    }

    /// The bpffs `load` mounts when it is missing: the default root's (/sys/fs/bpf) only; a
    /// caller choosing another root provides its filesystem.
    public var managedFilesystem: BPFFilesystem? { root == Self.defaultRoot ? BPFFilesystem() : nil }

    /// Why no instance is found here, for "not loaded" errors: bpffs missing (so no pin can be
    /// seen: a fresh machine, or inside `ip netns exec`), or nothing pinned for the interface.
    public var absence: String {
        if let bpffs = managedFilesystem, !bpffs.isMounted { return "no bpffs at \(bpffs.path), where its pins live" }
        return "nothing at \(directory)"
    }

    public var namespaceDirectory: String { Self.namespaceDirectory(root: root, namespace: namespace) }
    public var directory: String { "\(namespaceDirectory)/\(interface)" }
    public var link: String { "\(directory)/link" }
    public func map(_ name: String) -> String { "\(directory)/\(name)" }

    /// Interfaces with an instance pinned in `namespace`.
    public static func interfaces(root: String = defaultRoot, namespace: NetworkNamespace) -> [String] {
        Directory.entries(of: namespaceDirectory(root: root, namespace: namespace)).sorted()
    }

    /// Creates the instance folder and its parents.
    public func createDirectory() throws {
        var path = ""
        for component in directory.split(separator: "/") {
            path += "/" + component
            if mkdir(path, 0o700) != 0 && errno != EEXIST {
                throw KernelError.fromErrno("create \(path)")
            }
        }
    }

    /// Removes the instance folder (which must be empty), then parents that became empty,
    /// stopping at bpffs itself. Leaves anything it did not create.
    public func removeEmptyDirectories() {
        var path = directory
        while path.hasPrefix(root), rmdir(path) == 0 {
            guard let slash = path.lastIndex(of: "/") else { break }
            path = String(path[..<slash])
        }
    }
}

/// Small directory helpers over readdir.
enum Directory {
    static func entries(of path: String) -> [String] {
        guard let handle = opendir(path) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
