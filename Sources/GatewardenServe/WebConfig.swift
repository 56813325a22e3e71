import Foundation
import GatewardenYAML
import Yams

/// `--web.config.file`, in the Prometheus exporter-toolkit format: TLS and bcrypt basic auth.
///
///     tls_server_config:
///       cert_file: server.crt        # relative paths are relative to this file
///       key_file: server.key
///       min_version: TLS12           # TLS10, TLS11, TLS12 (default) or TLS13
///     basic_auth_users:
///       prometheus: $2y$10$...       # bcrypt hash, e.g. from `htpasswd -nBC 10 prometheus`
///
/// Every problem is an error naming the file, line and key; an exporter never starts on a
/// configuration it half understood.
public struct WebConfig: Sendable, Equatable {
    public struct TLS: Sendable, Equatable {
        public var certificatePEM: String
        public var keyPEM: String
        public var minimumVersion: String

        /// The GnuTLS priority string libmicrohttpd hands to its TLS library.
        public var priorities: String {
            switch minimumVersion {
            case "TLS13": return "NORMAL:-VERS-ALL:+VERS-TLS1.3"
            case "TLS12": return "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
            case "TLS11": return "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:+VERS-TLS1.1"
            default: return "NORMAL"
            }
        }
    }

    public var tls: TLS?
    /// User name to bcrypt hash.
    public var basicAuthUsers: [String: String]

    public struct Problem: Error, CustomStringConvertible, Equatable {
        public let file: String
        public let line: Int
        public let column: Int
        public let key: String
        public let message: String
        public var description: String { "\(file):\(line):\(column): \(key): \(message)" }
    }

    public init(tls: TLS? = nil, basicAuthUsers: [String: String] = [:]) {
        self.tls = tls
        self.basicAuthUsers = basicAuthUsers
    }

    public init(contentsOf path: String) throws {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw Problem(file: path, line: 0, column: 0, key: "--web.config.file", message: "cannot read the file")
        }
        try self.init(yaml: text, path: path)
    }

    public init(yaml text: String, path: String) throws {
        func problem(_ node: Node?, _ key: String, _ message: String) -> Problem {
            Problem(file: path, line: (node?.mark?.line ?? 0), column: (node?.mark?.column ?? 0), key: key, message: message)
        }
        let root: Node
        do {
            guard let composed = try YAMLDocument.compose(text) else { self.init(); return }
            root = composed
        } catch {
            throw Problem(file: path, line: error.line, column: error.column, key: error.key, message: error.message)
        }
        guard let mapping = root.mapping else { throw problem(root, "(root)", "expected a mapping of settings") }
        let directory = (path as NSString).deletingLastPathComponent
        var tls: TLS?
        var users: [String: String] = [:]

        for (keyNode, value) in mapping {
            let key = YAMLDocument.keyName(keyNode)
            switch key {
            case "tls_server_config":
                guard let settings = value.mapping else { throw problem(value, key, "expected a mapping") }
                var certificate: String?, privateKey: String?, minimum = "TLS12"
                for (settingNode, setting) in settings {
                    let name = "tls_server_config.\(YAMLDocument.keyName(settingNode))"
                    switch settingNode.string {
                    case "cert_file", "key_file":
                        guard let file = setting.string, !file.isEmpty else { throw problem(setting, name, "expected a file path") }
                        let resolved = file.hasPrefix("/") ? file : (directory as NSString).appendingPathComponent(file)
                        guard let pem = try? String(contentsOfFile: resolved, encoding: .utf8), pem.contains("-----BEGIN") else {
                            throw problem(setting, name, "cannot read a PEM file at \(resolved)")
                        }
                        if settingNode.string == "cert_file" { certificate = pem } else { privateKey = pem }
                    case "min_version":
                        guard let version = setting.string, ["TLS10", "TLS11", "TLS12", "TLS13"].contains(version) else {
                            throw problem(setting, name, "expected TLS10, TLS11, TLS12 or TLS13")
                        }
                        minimum = version
                    case "client_auth_type", "client_ca_file", "cipher_suites", "curve_preferences",
                         "max_version", "prefer_server_cipher_suites", "client_allowed_sans":
                        throw problem(settingNode, name, "is not supported by gatewarden")
                    default:
                        throw problem(settingNode, name, "unknown key")
                    }
                }
                guard let certificate else { throw problem(value, key, "cert_file is required with tls_server_config") }
                guard let privateKey else { throw problem(value, key, "key_file is required with tls_server_config") }
                tls = TLS(certificatePEM: certificate, keyPEM: privateKey, minimumVersion: minimum)
            case "basic_auth_users":
                guard let entries = value.mapping else { throw problem(value, key, "expected a mapping of user: bcrypt hash") }
                for (userNode, hashNode) in entries {
                    let name = "basic_auth_users.\(YAMLDocument.keyName(userNode))"
                    guard let user = userNode.string, !user.isEmpty, !user.contains(":") else {
                        throw problem(userNode, name, "user names are non-empty and contain no ':'")
                    }
                    guard let hash = hashNode.string, BCrypt.isHash(hash) else {
                        throw problem(hashNode, name, "expected a bcrypt hash ($2a$, $2b$ or $2y$)")
                    }
                    users[user] = hash
                }
            case "http_server_config":
                throw problem(keyNode, key, "is not supported by gatewarden")
            default:
                throw problem(keyNode, key, "unknown key")
            }
        }
        self.init(tls: tls, basicAuthUsers: users)
    }
}
