import CNFTables
import Foundation
import GatewardenCore
#if canImport(Glibc)
import Glibc
#endif

/// A libnftables context bound to one network namespace.
///
/// Every command runs inside the namespace (netlink sockets belong to the namespace they are
/// opened in). Contexts are not thread-safe; callers serialise use of one context.
///
///     let nft = try NFTables(namespace: lab)
///     try nft.run("add table inet gatewarden", dryRun: true)
///     let json = try nft.run("list table inet gatewarden", json: true)
public final class NFTables {
    private let context: OpaquePointer
    public let namespace: NetworkNamespace

    public init(namespace: NetworkNamespace = .current) throws {
        self.namespace = namespace
        guard let context = try namespace.perform({ nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) }) else {
            throw KernelError(operation: "create a libnftables context")
        }
        self.context = context
        nft_ctx_buffer_output(context)
        nft_ctx_buffer_error(context)
    }

    deinit {
        nft_ctx_free(context)
    }

    /// Runs one buffer of commands as one transaction and returns its output.
    /// With `dryRun` the kernel checks the transaction and commits nothing.
    @discardableResult
    public func run(_ commands: String, json: Bool = false, terse: Bool = false, dryRun: Bool = false) throws -> String {
        var flags: UInt32 = 0
        if json { flags |= UInt32(NFT_CTX_OUTPUT_JSON) }
        if terse { flags |= UInt32(NFT_CTX_OUTPUT_TERSE) }
        nft_ctx_output_set_flags(context, flags)
        nft_ctx_set_dry_run(context, dryRun)
        let result = try namespace.perform { nft_run_cmd_from_buffer(context, commands) }
        let output = nft_ctx_get_output_buffer(context).map { String(cString: $0) } ?? ""
        let errors = nft_ctx_get_error_buffer(context).map { String(cString: $0) } ?? ""
        guard result == 0 else {
            throw KernelError(operation: "nftables rejected the command", detail: errors.trimmingTrailingNewlines)
        }
        return output
    }

    /// Whether `table` exists in `family`.
    public func tableExists(family: String, name: String) throws -> Bool {
        let listing = try run("list tables \(family)")
        return listing.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces) == "table \(family) \(name)" }
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var text = self
        while text.last == "\n" { text.removeLast() }
        return text
    }
}

/// What defines a state set beyond its name and type: the statement its elements carry (kept in
/// the set's comment), how long an idle element lives (nil: until removed) and its size.
public struct NFTablesSetShape: Sendable, Equatable {
    public var comment: String
    public var timeoutSeconds: UInt64?
    public var size: Int

    public init(comment: String, timeoutSeconds: UInt64?, size: Int) {
        self.comment = comment
        self.timeoutSeconds = timeoutSeconds
        self.size = size
    }

    /// The set's body after its type, in nft syntax.
    public var body: String {
        let flags = timeoutSeconds == nil ? "dynamic" : "dynamic, timeout"
        let timeout = timeoutSeconds.map { "timeout \(PolicyDuration(seconds: $0).description); " } ?? ""
        return "flags \(flags); \(timeout)size \(size); comment \"\(comment)\";"
    }
}

extension NFTables {
    /// The sets of one table with their shapes, by name; empty when the table does not exist.
    public func setShapes(family: String, table: String) throws -> [String: NFTablesSetShape] {
        guard try tableExists(family: family, name: table) else { return [:] }
        let json = try run("list sets \(family)", json: true, terse: true)
        guard let root = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let objects = root["nftables"] as? [[String: Any]] else { return [:] }
        var shapes: [String: NFTablesSetShape] = [:]
        for object in objects {
            guard let set = object["set"] as? [String: Any], set["table"] as? String == table,
                  let name = set["name"] as? String else { continue }
            shapes[name] = NFTablesSetShape(comment: set["comment"] as? String ?? "",
                                            timeoutSeconds: (set["timeout"] as? NSNumber)?.uint64Value,
                                            size: (set["size"] as? NSNumber)?.intValue ?? 0)
        }
        return shapes
    }
}
