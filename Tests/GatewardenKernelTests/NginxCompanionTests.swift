import Foundation
import Testing

/// The nginx companion (`deploy/nginx/`) in a real nginx: the snippet and the example server included as
/// an operator installs them, only their paths moved into the test's folder, in front of a stub backend,
/// in the gateway namespace of a lab; clients in the client namespace, each from an address of its own
/// (192.0.2.0/24) so that every scenario starts with full limit budgets.
@Suite("The nginx companion config (deploy/nginx) in a real nginx", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct NginxCompanionTests {
    @Test("nginx -t accepts the snippet and the example server as shipped, only their paths substituted")
    func configurationAccepted() throws {
        try withCompanion { _, nginx, _ in
            #expect(nginx.configurationTest.status == 0)
            #expect(nginx.configurationTest.stderr.contains("syntax is ok"), "\(nginx.configurationTest.stderr)")
            #expect(nginx.configurationTest.stderr.contains("test is successful"), "\(nginx.configurationTest.stderr)")
        }
    }

    @Test("login: the 5th rapid request is refused with 429 and Retry-After 12, the four before pass without it, however the path is spelled; token refresh shares the budget")
    func loginLimit() throws {
        try withCompanion { lab, nginx, client in
            let login = try client.get(Array(repeating: "/api/v1/auth/login", count: 6), from: "192.0.2.10")
            #expect(login.map(\.status) == [200, 200, 200, 200, 429, 429])
            #expect(login.map(\.retryAfter) == [nil, nil, nil, nil, "12", "12"])

            // Its own burst of 2: three pass, the fourth is refused.
            let refresh = try client.get(Array(repeating: "/api/v1/auth/token/refresh", count: 4), from: "192.0.2.11")
            #expect(refresh.map(\.status) == [200, 200, 200, 429])
            #expect(refresh.map(\.retryAfter) == [nil, nil, nil, "12"])

            // One budget for both: four logins spend it, a refresh right after is refused.
            let both = try client.get(Array(repeating: "/api/v1/auth/login", count: 4) + ["/api/v1/auth/token/refresh"], from: "192.0.2.12")
            #expect(both.map(\.status) == [200, 200, 200, 200, 429])

            // nginx matches locations on the normalized path: spelling the login differently is still a login.
            let disguised = try client.get(["/api/v1/auth/login", "/api/v1/auth/%6cogin", "/api/v1//auth/login", "/api/v1/auth/./login",
                                            "/api/v1/x/../auth/login"], from: "192.0.2.13")
            #expect(disguised.map(\.status) == [200, 200, 200, 200, 429])

            try expectLogged(login + refresh + both + disguised, in: nginx)
        }
    }

    @Test("account, payment and profile share a budget of 6; the 7th is refused with Retry-After 6")
    func sensitiveLimit() throws {
        try withCompanion { lab, nginx, client in
            let paths = ["/api/v1/account", "/api/v1/payment/methods", "/api/v1/profile/42", "/api/v1/account/7",
                         "/api/v1/payment", "/api/v1/profile", "/api/v1/account", "/api/v1/payment"]
            let responses = try client.get(paths, from: "192.0.2.20")
            #expect(responses.map(\.status) == Array(repeating: 200, count: 6) + [429, 429])
            #expect(responses.map(\.retryAfter) == Array(repeating: nil, count: 6) + ["6", "6"])
            // The sensitive budget is spent; the general one is not.
            let general = try client.get(["/api/v1/items"], from: "192.0.2.20")
            #expect(general.map(\.status) == [200])
            try expectLogged(responses + general, in: nginx)
        }
    }

    @Test("the rest of the API: 21 pass, the 22nd gets 429 with Retry-After 1; after that second exactly one more passes; a backend's own 429 passes through")
    func generalLimit() throws {
        try withCompanion { lab, nginx, client in
            let rapid = try client.get(Array(repeating: "/api/v1/items", count: 22), from: "192.0.2.30")
            #expect(rapid.map(\.status) == Array(repeating: 200, count: 21) + [429])
            #expect(rapid.map(\.retryAfter) == Array(repeating: nil, count: 21) + ["1"])

            // Retry-After is honest: one request fits after it, and only one.
            let later = try client.get(["/api/v1/items", "/api/v1/items"], from: "192.0.2.30", pauseFirst: 1.1)
            #expect(later.map(\.status) == [200, 429])

            // The backend's 429 is not nginx's: it keeps the backend's Retry-After and gets none added.
            let busy = try client.get(["/api/v1/busy"], from: "192.0.2.31")
            #expect(busy.map(\.status) == [429])
            #expect(busy.map(\.retryAfter) == ["30"])
            try expectLogged(rapid + later + busy, in: nginx)
        }
    }

    @Test("IPv6: the limits count a /64 as one client, so rotating addresses inside it buys no budget; another /64 has its own")
    func ipv6Subnet() throws {
        try withCompanion { lab, nginx, client in
            try lab.inGateway(["ip", "addr", "add", "2001:db8::1/32", "dev", lab.gatewayInterface, "nodad"])
            // Five addresses of one /64, each written by nginx in another shape (what :: hides differs).
            let sameSubnet = ["2001:db8::a", "2001:db8:0:0:1::", "2001:db8::1:2:3:4", "2001:db8:0:0:ffff::", "2001:db8::ffff:0:0:1"]
            let otherSubnet = "2001:db8:0:1::a"
            try lab.addClientAddresses(sameSubnet + [otherSubnet], prefix: 32)
            var responses: [Response] = []
            for source in sameSubnet + [otherSubnet] {
                responses += try client.get(["/api/v1/auth/login"], from: source, host: "2001:db8::1")
            }
            #expect(responses.map(\.status) == [200, 200, 200, 200, 429, 200])
            let lines = try expectLogged(responses, in: nginx)
            #expect(lines.map(\.remoteAddress) == ["2001:db8::a", "2001:db8:0:0:1::", "2001:db8::1:2:3:4", "2001:db8:0:0:ffff::",
                                                   "2001:db8::ffff:0:0:1", "2001:db8:0:1::a"])
        }
    }

    @Test("the client key of 6,000 IPv6 addresses, zero groups wherever they fall, is always their /64 written in full")
    func ipv6Keys() throws {
        try withCompanion { lab, _, _ in
            let result = try lab.inGateway(["python3", "-c", Self.keyProbe]).stdout
            #expect(result.hasPrefix("checked 6000, wrong 0"), "\(result)")
        }
    }

    /// Random addresses (their groups mostly 0, so that :: falls everywhere), each sent in its long and
    /// its short form to the realip probe server, whose answer must be the address's first four groups.
    private static let keyProbe = #"""
        import http.client, ipaddress, random
        random.seed(64)
        conn = http.client.HTTPConnection("127.0.0.1", 18081, timeout=10)
        checked, wrong = 0, []
        for _ in range(3000):
            groups = [random.choice([0, 0, 0, 1, 0xdb8, 0xffff, random.randrange(65536)]) for _ in range(8)]
            address = ipaddress.IPv6Address(b"".join(g.to_bytes(2, "big") for g in groups))
            expected = ":".join(f"{g:x}" for g in groups[:4])
            for text in (address.exploded, address.compressed):
                conn.request("GET", "/", headers={"X-Test-Address": text})
                key = conn.getresponse().read().decode()
                checked += 1
                if key != expected:
                    wrong.append(f"{text} -> {key}, not {expected}")
        print(f"checked {checked}, wrong {len(wrong)}", *wrong[:10], sep="\n")
        """#

    @Test("keep-alive: the second request on a connection logs $connection_requests 2 and the same $connection; a new connection a new one")
    func keepAlive() throws {
        try withCompanion { lab, nginx, client in
            let first = try client.get(["/api/v1/items", "/api/v1/items", "/api/v1/items"], from: "192.0.2.40", tls: true)
            let second = try client.get(["/api/v1/items"], from: "192.0.2.40", tls: true)
            let lines = try expectLogged(first + second, in: nginx)
            try #require(lines.count == 4)
            #expect(lines.map(\.connectionRequests) == [1, 2, 3, 1])
            #expect(Set(lines.prefix(3).map(\.connection)).count == 1)
            #expect(lines[3].connection != lines[0].connection)
            #expect(lines.allSatisfy { $0.protocolName == "TLSv1.3" })
        }
    }

    @Test("TLS session reuse: a resumed session logs r, a fresh one ., for TLS 1.2 and 1.3, and a reload keeps sessions resumable", arguments: ["TLSv1_2", "TLSv1_3"])
    func sessionReuse(version: String) throws {
        try withCompanion { lab, nginx, client in
            let master = try #require(nginx.pid)
            let connections = try client.resume(["fresh", "resume", "reload", "resume", "fresh"], version: version, from: "192.0.2.50", master: master)
            #expect(connections.map(\.reused) == [false, true, true, false], "what the client saw")
            let lines = try expectLogged(connections.map { _ in Response(status: 200, retryAfter: nil) }, in: nginx)
            #expect(lines.map(\.sessionReused) == [".", "r", "r", "."], "what nginx logged")
            #expect(lines.allSatisfy { $0.protocolName == version.replacingOccurrences(of: "_", with: ".") })
        }
    }

    @Test("plain HTTP logs - for both TLS fields")
    func plainHTTP() throws {
        try withCompanion { lab, nginx, client in
            let lines = try expectLogged(try client.get(["/api/v1/items"], from: "192.0.2.60"), in: nginx)
            #expect(lines.map(\.sessionReused) == ["-"] && lines.map(\.protocolName) == ["-"])
        }
    }

    @Test("hostile requests (quotes, spaces, encoded newlines, a forged log line, forwarding headers, raw bytes, garbage) log one well-formed line each, naming the real client")
    func hostileRequests() throws {
        try withCompanion { lab, nginx, client in
            let forged = "gw1 1700000000.000 6.6.6.6 1 1 r TLSv1.3 200 0.000"
            let requests: [String] = [
                "GET /api/v1/items?q=%22%20200%200.000%0a\(forged.replacingOccurrences(of: " ", with: "%20")) HTTP/1.1\r\n"
                    + "Host: api.example.com\r\nUser-Agent: \(forged)\r\nReferer: \"quoted\" \\\" back\\slash\r\n"
                    + "X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n"
                    + "X-Newline: a\\nb\\x0a%0d%0a\(forged)\r\nCookie: a=\"b c\"; d=e\r\nConnection: close\r\n\r\n",
                // A bare LF ends a header line for nginx: the forged line becomes a header of its own.
                "GET /api/v1/items HTTP/1.1\r\nHost: x\r\nUser-Agent: a\n\(forged): x\r\nConnection: close\r\n\r\n",
                // Bytes that are not ASCII, in the URI and in a header.
                "GET /api/v1/\u{00e9}\u{00ff} HTTP/1.1\r\nHost: x\r\nUser-Agent: \u{00c3}\u{00a9}\u{0001}\u{007f}\r\nConnection: close\r\n\r\n",
                // Refused by nginx's parser (400), and still logged.
                "GET /api/v1/a b c\u{0000} HTTP/1.1\r\nHost: x\r\n\r\n",
                "\u{0016}\u{0003}\u{0001}\u{0000}\u{00a5}\u{0001}\u{0000}\u{0000}\u{00a1}\u{0003}\u{0003}\r\n\r\n",
            ]
            let before = try logLines(nginx).count
            let statuses = try client.raw(requests, from: "192.0.2.70")
            #expect(statuses.count == requests.count)
            let lines = try expectLogged(statuses.map { Response(status: $0, retryAfter: nil) }, in: nginx, after: before)
            #expect(lines.count == requests.count)
            #expect(lines.allSatisfy { $0.remoteAddress == "192.0.2.70" })
            let log = try String(contentsOfFile: nginx.path("gatewarden.log"), encoding: .utf8)
            #expect(!log.contains("6.6.6.6") && !log.contains("quoted") && !log.contains("1700000000"))
        }
    }
}

// MARK: - The companion in nginx

extension NginxCompanionTests {
    /// Where `deploy/nginx/` is in this checkout.
    static let companion = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("deploy/nginx")

    /// A lab with nginx running the companion in the gateway namespace and addresses for the clients
    /// (192.0.2.10-79; other suites, such as TLSSessionReuseFeedKernelTests, add their own);
    /// `body` runs, then everything is removed.
    func withCompanion(_ body: (LabNetwork, Nginx, CompanionClient) throws -> Void) throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        try lab.addClientAddresses((10...79).map { "192.0.2.\($0)" }, prefix: 24)
        let nginx = try Nginx(namespace: lab.gateway) { path in
            try Command.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=api.example.com",
                             "-keyout", path("key.pem"), "-out", path("cert.pem")])
            try Self.installed("gatewarden.conf", at: path("gatewarden.conf"), substituting: [:])
            try Self.installed("example-server.conf", at: path("example-server.conf"), substituting: [
                "/etc/nginx/tls/api.example.com.crt": path("cert.pem"),
                "/etc/nginx/tls/api.example.com.key": path("key.pem"),
                "/var/log/nginx/gatewarden.log": path("gatewarden.log"),
                "server 127.0.0.1:8080;": "server 127.0.0.1:18080;",
            ])
            // As an operator's http block would be: the snippet first (it defines what the server names).
            return """
                access_log off;
                include \(path("gatewarden.conf"));
                server {
                    listen 127.0.0.1:18080;
                    location / { return 200 "backend\\n"; }
                    location = /api/v1/busy { add_header Retry-After 30 always; return 429; }
                }
                # Answers with the key the limits count a client by, for any address the test names.
                server {
                    listen 127.0.0.1:18081;
                    set_real_ip_from 127.0.0.1;
                    real_ip_header X-Test-Address;
                    location / { return 200 "$gatewarden_client"; }
                }
                include \(path("example-server.conf"));
                """
        }
        defer { nginx.stop() }
        try body(lab, nginx, CompanionClient(lab: lab))
    }

    /// Copies a companion file to `destination`, replacing each key by its value; a key missing from the
    /// file is an error (the test would otherwise run a configuration other than the one it claims).
    private static func installed(_ name: String, at destination: String, substituting replacements: [String: String]) throws {
        var text = try String(contentsOf: companion.appendingPathComponent(name), encoding: .utf8)
        for (placeholder, value) in replacements {
            guard text.contains(placeholder) else {
                throw Command.Failure(command: ["install", name], result: .init(status: -1, stdout: "", stderr: "\(name) no longer contains '\(placeholder)'"))
            }
            text = text.replacingOccurrences(of: placeholder, with: value)
        }
        try text.write(toFile: destination, atomically: true, encoding: .utf8)
    }

    /// The lines of the gatewarden log (none if it does not exist yet).
    private func logLines(_ nginx: Nginx) throws -> [Substring] {
        guard let log = try? String(contentsOfFile: nginx.path("gatewarden.log"), encoding: .utf8) else { return [] }
        return log.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
    }

    /// Expects one well-formed line per response after the first `after` lines, in order, each with the
    /// status the client saw and within the test's time, and returns them parsed. nginx writes a line
    /// after the response is sent, so it waits (bounded) for them to appear.
    @discardableResult
    private func expectLogged(_ responses: [Response], in nginx: Nginx, after: Int = 0,
                              sourceLocation: SourceLocation = #_sourceLocation) throws -> [LogLine] {
        var lines = try logLines(nginx).dropFirst(after)
        let deadline = Date().addingTimeInterval(3)
        while lines.count < responses.count && Date() < deadline {
            usleep(20_000)
            lines = try logLines(nginx).dropFirst(after)
        }
        #expect(lines.count == responses.count, "log lines: \(Array(lines))", sourceLocation: sourceLocation)
        let parsed = lines.map { LogLine($0) }
        for (line, entry) in zip(lines, parsed) {
            #expect(entry != nil, "not of the gatewarden format: \(line.debugDescription)", sourceLocation: sourceLocation)
        }
        let valid = parsed.compactMap { $0 }
        #expect(valid.map(\.status) == responses.map(\.status), sourceLocation: sourceLocation)
        let now = Date().timeIntervalSince1970
        #expect(valid.allSatisfy { $0.time > now - 120 && $0.time <= now + 1 && $0.requestTime < 10 }, sourceLocation: sourceLocation)
        return valid
    }
}

extension NginxCompanionTests {
    /// One line of the `gatewarden` log format, read strictly: the tag and eight fields, one space apart,
    /// each of its kind. Anything else (a field more or less, a stray character) is not a line of it. The
    /// test's own reading, independent of any parser it is meant to prove the format for.
    struct LogLine {
        var time: Double
        var remoteAddress: String
        var connection: Int
        var connectionRequests: Int
        var sessionReused: String
        var protocolName: String
        var status: Int
        var requestTime: Double

        init?(_ line: Substring) {
            let pattern = #/gw1 (\d+\.\d{3}) ([0-9a-f.:]+) (\d+) (\d+) ([r.-]) (TLSv1\.[0-3]|-) (\d{3}) (\d+\.\d{3})/#
            guard let match = line.wholeMatch(of: pattern),
                  let time = Double(match.1), let connection = Int(match.3), let requests = Int(match.4),
                  let status = Int(match.7), let requestTime = Double(match.8) else { return nil }
            self.time = time
            remoteAddress = String(match.2)
            self.connection = connection
            connectionRequests = requests
            sessionReused = String(match.5)
            protocolName = String(match.6)
            self.status = status
            self.requestTime = requestTime
        }
    }

    /// What a client saw of one response.
    struct Response: Decodable, Equatable {
        var status: Int
        var retryAfter: String?
    }
}

/// HTTP clients in the lab's client namespace (Python), talking to the gateway's nginx.
struct CompanionClient {
    typealias Response = NginxCompanionTests.Response
    let lab: LabNetwork

    /// GETs `paths` in order from `source`, on one keep-alive connection to `host` (the gateway's IPv4
    /// address unless given), after `pauseFirst` seconds.
    func get(_ paths: [String], from source: String, host: String? = nil, tls: Bool = false, pauseFirst: Double = 0) throws -> [Response] {
        try run(["mode": "get", "paths": paths, "source": source, "host": host ?? lab.gatewayAddress, "tls": tls, "pause": pauseFirst],
                as: [Response].self)
    }

    /// One TLS connection per step ("fresh": a new client context; "resume": the session of the previous
    /// connection), each with one request; "reload" reloads nginx (SIGHUP to `master`) and waits for the
    /// new worker. Returns what the client saw of each connection.
    func resume(_ steps: [String], version: String, from source: String, master: pid_t) throws -> [Resumption] {
        try run(["mode": "resume", "steps": steps, "version": version, "source": source, "master": Int(master)], as: [Resumption].self)
    }

    struct Resumption: Decodable {
        var reused: Bool
    }

    /// Sends each request as raw bytes (Latin-1) on a connection of its own to port 80 and reads until
    /// nginx closes it (each request asks it to, or is refused); returns the status of each response.
    func raw(_ requests: [String], from source: String) throws -> [Int] {
        try run(["mode": "raw", "requests": requests, "source": source], as: [Int].self)
    }

    private func run<T: Decodable>(_ arguments: [String: Any], as type: T.Type) throws -> T {
        var arguments = arguments
        arguments["host"] = arguments["host"] ?? lab.gatewayAddress
        let json = String(decoding: try JSONSerialization.data(withJSONObject: arguments), as: UTF8.self)
        let result = try Command.run(["ip", "netns", "exec", lab.client, "timeout", "60", "python3", "-c", Self.script, json])
        return try JSONDecoder().decode(T.self, from: Data(result.stdout.utf8))
    }

    private static let script = #"""
        import http.client, json, os, signal, socket, ssl, sys, time

        args = json.loads(sys.argv[1])
        host, source = args["host"], args["source"]

        def context(version=None):
            c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            c.check_hostname = False
            c.verify_mode = ssl.CERT_NONE
            if version:
                c.minimum_version = c.maximum_version = getattr(ssl.TLSVersion, version)
            return c

        def get():
            if args["tls"]:
                conn = http.client.HTTPSConnection(host, 443, context=context(), source_address=(source, 0), timeout=10)
            else:
                conn = http.client.HTTPConnection(host, 80, source_address=(source, 0), timeout=10)
            time.sleep(args["pause"])
            out = []
            for path in args["paths"]:
                conn.request("GET", path, headers={"Host": "api.example.com"})
                r = conn.getresponse()
                r.read()
                out.append({"status": r.status, "retryAfter": r.getheader("Retry-After")})
            conn.close()
            return out

        def workers(master):
            with open(f"/proc/{master}/task/{master}/children") as f:
                return set(f.read().split())

        def reload(master):
            old = workers(master)
            os.kill(master, signal.SIGHUP)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                now = workers(master)
                if now and not (now & old):
                    return
                time.sleep(0.02)
            raise SystemExit("nginx did not reload")

        def resume():
            ctx, session, out = None, None, []
            for step in args["steps"]:
                if step == "reload":
                    reload(args["master"])
                    continue
                if step == "fresh":
                    ctx, session = context(args["version"]), None
                raw = socket.create_connection((host, 443), timeout=10, source_address=(source, 0))
                s = ctx.wrap_socket(raw, session=session)
                s.sendall(b"GET /api/v1/items HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
                # Read to the end: a TLS 1.3 session ticket arrives after the handshake.
                while s.recv(65536):
                    pass
                out.append({"reused": s.session_reused})
                session = s.session
                s.close()
            return out

        def raw():
            out = []
            for request in args["requests"]:
                s = socket.create_connection((host, 80), timeout=10, source_address=(source, 0))
                s.sendall(request.encode("latin-1"))
                response = b""
                while True:
                    data = s.recv(65536)
                    if not data:
                        break
                    response += data
                s.close()
                out.append(int(response.split(b" ", 2)[1]))
            return out

        print(json.dumps({"get": get, "resume": resume, "raw": raw}[args["mode"]]()))
        """#
}
