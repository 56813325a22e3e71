import Foundation
import GatewardenKernel
import GatewardenDataPlane

/// What a failed `load` must undo so that the instance is left exactly as it was: the program
/// it replaced or the link it made, what it wrote into maps that were already pinned, and the pins
/// it created. Pins that were there before, with the bans, buckets and counters in them, are never
/// removed: a load that fails, even after the interface was re-created, leaves them as they were.
///
///     var rollback = try InstallRollback(layout: layout, mapNames: object.mapNames)   // before anything changes
///     do { ...; try rollback.replacing(link); try link.replaceProgram(with: fd); ... }
///     catch { rollback.undo(); throw error }
public struct InstallRollback {
    /// Maps that only user space writes and `load` rewrites: what it configures, the lists and the
    /// loader record. The rest (counters, buckets, offenders, caches) the program writes: they are
    /// never rewritten by `load`, and restoring them would undo the program's work.
    static let configuredMaps = [
        XDPMaps.Name.config, XDPMaps.Name.ports, XDPMaps.Name.listFilter,
        XDPMaps.Name.allowlist, XDPMaps.Name.blocklist, XDPMaps.Name.loader,
    ]

    let layout: PinLayout
    private let hadDirectory: Bool
    /// The map pins this load creates: those missing now.
    private let createdPins: [String]
    private let snapshots: [BPFMapSnapshot]
    private var replacedProgram: (link: XDPLink, program: FileDescriptor)?
    private var attachedLink: XDPLink?
    private var sysctls: [(name: String, value: String, namespace: NetworkNamespace)] = []
    private var createdRecords: [NamespaceRecord] = []

    /// Call before anything changes: notes what is pinned and what the configured maps hold.
    public init(layout: PinLayout, mapNames: [String]) throws {
        self.layout = layout
        hadDirectory = FileManager.default.fileExists(atPath: layout.directory)
        createdPins = mapNames.map(layout.map).filter { !FileManager.default.fileExists(atPath: $0) }
        snapshots = try Self.configuredMaps.compactMap { name in
            guard let map = try? BPFMap(pinnedAt: layout.map(name)) else { return nil }
            return try BPFMapSnapshot(of: map)
        }
    }

    /// Call before writing the sysctl `name`: keeps its value to put back.
    public mutating func changingSysctl(_ name: String, in namespace: NetworkNamespace) throws {
        if let value = try Sysctl.read(name, in: namespace) { sysctls.append((name, value, namespace)) }
    }

    /// Call once this load recorded something about the namespace (see NamespaceRecord).
    public mutating func created(_ record: NamespaceRecord) {
        createdRecords.append(record)
    }

    /// Call before swapping the program behind `link`: keeps the running one to put back.
    public mutating func replacing(_ link: XDPLink) throws {
        replacedProgram = (link, try link.currentProgram())
    }

    /// Call once a new link is attached and pinned.
    public mutating func attached(_ link: XDPLink) {
        attachedLink = link
    }

    /// Undoes, in order: the program (so no packet meets the old program with new settings for
    /// longer than this takes), the maps' contents, the pins this load created, sysctls. Anything that cannot
    /// be undone is said on stderr; the caller throws the error that made the load fail.
    public func undo() {
        var failures: [String] = []
        func attempt(_ what: String, _ body: () throws -> Void) {
            do { try body() } catch { failures.append("\(what): \(error)") }
        }
        if let (link, program) = replacedProgram {
            attempt("put back XDP program behind \(link.pinPath)") { try link.replaceProgram(with: program.rawValue) }
        }
        if let attachedLink, attachedLink.exists {
            attempt("detach the new XDP link") { try attachedLink.detach() }
        }
        for snapshot in snapshots {
            attempt("restore map \(snapshot.map.info.name)") { try snapshot.restore() }
        }
        for path in createdPins where unlink(path) != 0 && errno != ENOENT {
            failures.append("remove pin \(path): \(String(cString: strerror(errno)))")
        }
        if !hadDirectory { layout.removeEmptyDirectories() }
        for (name, value, namespace) in sysctls.reversed() where (try? Sysctl.read(name, in: namespace)) != value {
            attempt("put back \(name)") {
                try Sysctl.write(name, value, in: namespace)
                FileHandle.standardError.write(Data("gatewarden: put back \(name)=\(value) in \(namespace)\n".utf8))
            }
        }
        for record in createdRecords {
            attempt("remove the record \(record.name)") { try record.remove() }
        }
        guard !failures.isEmpty else { return }
        FileHandle.standardError.write(Data(("gatewarden: undoing the failed load left work undone:\n  "
            + failures.joined(separator: "\n  ") + "\n").utf8))
    }
}
