/// `basic_auth_users` from the web config, checked so that a response's timing says nothing about
/// which user names exist.
///
/// A known user costs a bcrypt computation; so does an unknown one, against a decoy hash of the
/// highest configured cost, and user names are compared in constant time with every entry
/// compared. Without this an unknown user is answered in microseconds and a known one in tens of
/// milliseconds, which lets a client list the user names before guessing any password.
struct BasicAuthUsers: Sendable {
    private let users: [(name: String, hash: String)]
    private let decoyHash: String
    private let bcrypt: BCrypt

    init(_ users: [String: String], bcrypt: BCrypt = BCrypt()) {
        self.users = users.sorted { $0.key < $1.key }.map { (name: $0.key, hash: $0.value) }
        self.bcrypt = bcrypt
        let cost = users.values.compactMap(BCrypt.cost(of:)).max() ?? 10
        // A well-formed hash (an all-zero salt) that no password is known to produce; its cost is
        // all that matters.
        decoyHash = "$2b$" + (cost < 10 ? "0\(cost)" : "\(cost)") + "$" + String(repeating: ".", count: 53)
    }

    /// Whether any user is configured; without users every request is allowed.
    var isEnabled: Bool { !users.isEmpty }

    /// Whether the credentials name a configured user and that user's password.
    func isAuthorized(user: String?, password: String?) -> Bool {
        guard isEnabled else { return true }
        // Without credentials there is no name to reveal.
        guard let user, let password else { return false }
        var hash = decoyHash
        var known = false
        for entry in users where BCrypt.constantTimeEqual(entry.name, user) {
            hash = entry.hash
            known = true
        }
        let matches = bcrypt.verify(password: password, hash: hash)
        return known && matches
    }
}
