import Foundation
import Testing
@testable import GatewardenServe

@Suite("--web.config.file")
struct WebConfigTests {
    /// bcrypt (cost 10) of "scrape-secret", made with libxcrypt through Python's crypt module.
    static let hash = "$2b$10$nh7N5M1AAtFwmjKUjTVgS.5uds7ta/B5T6rtFQT/YhLADAUvhzs1."

    private func problem(_ yaml: String) -> WebConfig.Problem? {
        do {
            _ = try WebConfig(yaml: yaml, path: "/etc/gatewarden/web.yml")
            return nil
        } catch let problem as WebConfig.Problem {
            return problem
        } catch {
            return nil
        }
    }

    @Test("basic auth users with bcrypt hashes")
    func basicAuth() throws {
        let config = try WebConfig(yaml: "basic_auth_users:\n  prometheus: \(Self.hash)\n", path: "web.yml")
        #expect(config.basicAuthUsers == ["prometheus": Self.hash])
        #expect(config.tls == nil)
    }

    @Test("TLS files relative to the config file, with a minimum version")
    func tls() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gw-webconfig-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "-----BEGIN CERTIFICATE-----\nx\n".write(to: directory.appendingPathComponent("c.pem"), atomically: true, encoding: .utf8)
        try "-----BEGIN PRIVATE KEY-----\ny\n".write(to: directory.appendingPathComponent("k.pem"), atomically: true, encoding: .utf8)
        let path = directory.appendingPathComponent("web.yml").path
        try "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  min_version: TLS13\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let config = try WebConfig(contentsOf: path)
        #expect(config.tls?.minimumVersion == "TLS13")
        #expect(config.tls?.priorities == "NORMAL:-VERS-ALL:+VERS-TLS1.3")
        #expect(config.tls?.certificatePEM.hasPrefix("-----BEGIN CERTIFICATE-----") == true)
    }

    @Test("problems name the file, line, column and key", arguments: [
        ("basic_auth_users:\n  alice: plaintext\n", 2, "basic_auth_users.alice", "bcrypt"),
        ("tls_server_config:\n  cert_file: /nonexistent.pem\n", 2, "tls_server_config.cert_file", "cannot read"),
        ("tls_server_config:\n  min_version: SSL3\n", 2, "tls_server_config.min_version", "TLS10"),
        ("tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n", 2, "tls_server_config.client_auth_type", "not supported"),
        ("basic_auth_user:\n  a: b\n", 1, "basic_auth_user", "unknown key"),
        ("- a\n- b\n", 1, "(root)", "mapping"),
        ("basic_auth_users: {a: b\n", 2, "(yaml)", "did not find expected"),
        ("basic_auth_users: {}\nbasic_auth_users: {}\n", 1, "basic_auth_users", "more than once"),
        ("? [a]\n: 1\n", 1, "(yaml)", "plain word"),
    ] as [(String, Int, String, String)])
    func problems(yaml: String, line: Int, key: String, message: String) throws {
        let found = try #require(problem(yaml))
        #expect(found.file == "/etc/gatewarden/web.yml")
        #expect(found.line == line)
        #expect(found.key == key)
        #expect(found.message.contains(message))
        #expect(found.description.hasPrefix("/etc/gatewarden/web.yml:\(line):"))
    }

    @Test("bcrypt: the right password passes, a wrong one and a non-hash do not")
    func bcrypt() {
        let checker = BCrypt()
        #expect(checker.verify(password: "scrape-secret", hash: Self.hash))
        #expect(checker.verify(password: "scrape-secret", hash: Self.hash), "cached")
        #expect(!checker.verify(password: "scrape-secreT", hash: Self.hash))
        #expect(!checker.verify(password: "", hash: Self.hash))
        #expect(BCrypt.isHash(Self.hash))
        #expect(!BCrypt.isHash("$1$abc$def"))
    }
}
