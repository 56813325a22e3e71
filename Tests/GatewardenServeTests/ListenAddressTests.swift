import Testing
@testable import GatewardenServe
#if canImport(Glibc)
import Glibc
#endif

@Suite("--web.listen-address")
struct ListenAddressTests {
    @Test("the forms Prometheus exporters accept", arguments: [
        (":10099", nil, 10099),
        ("127.0.0.1:9", "127.0.0.1", 9),
        ("[::1]:10099", "::1", 10099),
        ("localhost:80", "localhost", 80),
    ] as [(String, String?, UInt16)])
    func parses(text: String, host: String?, port: UInt16) throws {
        let address = try ListenAddress(parsing: text)
        #expect(address.host == host)
        #expect(address.port == port)
        #expect(address.description == text)
    }

    @Test("bad values name the flag and the value", arguments: ["10099", ":http", ":70000", ""])
    func rejects(text: String) {
        #expect {
            try ListenAddress(parsing: text)
        } throws: { error in
            String(describing: error).hasPrefix("--web.listen-address '\(text)':")
        }
    }

    @Test("port 0 listens on a free loopback port and reports it")
    func ephemeralPort() throws {
        let fd = try ListenAddress(host: "127.0.0.1", port: 0).listen()
        defer { close(fd) }
        let port = try #require(ListenAddress.boundPort(of: fd))
        #expect(port > 0)
    }
}
