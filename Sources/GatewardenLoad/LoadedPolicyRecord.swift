import Foundation
import GatewardenDataPlane
import GatewardenKernel
import GatewardenPolicy

/// The policy `load` last applied in a network namespace, as it was read then (the file's text, not
/// its path: an edit made since is not applied behind the operator's back). The enforce loop's
/// repair loads exactly this again when another tool removed the table or the program; after
/// `unload` of the namespace's last instance there is none, and nothing is repaired.
public struct LoadedPolicyRecord {
    private let record: NamespaceRecord

    public init(namespace: NetworkNamespace, directory: String = ChangeLock.defaultDirectory) {
        record = NamespaceRecord(namespace: namespace, name: "loaded-policy", directory: directory)
    }

    public func write(_ source: PolicySource) throws {
        let data = try JSONEncoder().encode(source)
        try record.write(String(decoding: data, as: UTF8.self))
    }

    /// The recorded source, or nil when none is (never loaded by this version, or unloaded).
    public func read() throws -> PolicySource? {
        guard let text = try record.read() else { return nil }
        return try JSONDecoder().decode(PolicySource.self, from: Data(text.utf8))
    }

    public func remove() throws {
        try record.remove()
    }
}
