/// The nftables ruleset a policy renders to: one table, `inet gatewarden`, so Gatewarden's
/// rules never mix with the host's own and can be replaced or removed as a whole.
///
/// Every rule carries a comment that is its stable identity: the exporter labels the rule's
/// counters with it, and dashboards and alerts key on it.
///
///     let ruleset = NFTablesRuleset(policy: .builtInDefault)
///     try nft.run(ruleset.replaceTransaction)   // atomic: no moment without the table
public struct NFTablesRuleset: Sendable, Equatable {
    public static let family = "inet"
    public static let tableName = "gatewarden"

    /// Stable rule identities (the rules' comments).
    public enum RuleID {
        public static let synToProtectedPorts = "syn-to-protected-ports"
    }

    public let policy: Policy

    public init(policy: Policy) {
        self.policy = policy
    }

    /// The table as nft syntax.
    public var text: String {
        let ports = policy.protectedPorts.map(String.init).joined(separator: ", ")
        return """
        table \(Self.family) \(Self.tableName) {
        \tchain input {
        \t\t# Before the host's own filter rules: what we drop never reaches them.
        \t\ttype filter hook input priority filter - 10; policy accept;
        \t\ttcp dport { \(ports) } tcp flags & (syn | ack) == syn counter comment "\(RuleID.synToProtectedPorts)"
        \t}
        }

        """
    }

    /// One transaction that creates the table if missing, deletes it and defines it anew.
    /// The kernel applies a transaction whole or not at all, so there is no window without it.
    public var replaceTransaction: String {
        """
        add table \(Self.family) \(Self.tableName)
        delete table \(Self.family) \(Self.tableName)
        \(text)
        """
    }

    /// Removes the table and everything in it.
    public static var deleteCommand: String { "delete table \(family) \(tableName)" }
}
