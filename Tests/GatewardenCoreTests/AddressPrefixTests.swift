import GatewardenCore
import Testing

/// CIDR parsing: what an operator types on the command line and in the policy.
@Suite("Address prefix")
struct AddressPrefixTests {
    @Test("IPv4 and IPv6 networks parse and print back the same", arguments: [
        "192.0.2.0/24", "198.51.100.7/32", "2001:db8::/48", "2001:db8::1/128",
    ])
    func roundTrip(text: String) throws {
        #expect(try AddressPrefix(text).description == text)
    }

    @Test("a bare address is a host prefix")
    func bareAddress() throws {
        #expect(try AddressPrefix("203.0.113.9").length == 32)
        #expect(try AddressPrefix("2001:db8::9").length == 128)
    }

    @Test("host bits, garbage and out-of-range lengths are refused with the reason", arguments: [
        "192.0.2.1/24", "banana", "192.0.2.0/33", "2001:db8::/129", "192.0.2.0/", "/24", "192.0.2.0/24/1",
    ])
    func refused(text: String) {
        #expect(throws: AddressPrefix.ParseError.self) { try AddressPrefix(text) }
    }
}

/// Widening a source to its subnet, and containment: what bans and the allowlist are judged by.
@Suite("Address prefix arithmetic")
struct AddressPrefixArithmeticTests {
    @Test("a source widens to its /24 or /64, host bits cleared")
    func widening() throws {
        #expect(try AddressPrefix("198.51.100.7").widened(to: 24) == AddressPrefix("198.51.100.0/24"))
        #expect(try AddressPrefix("2001:db8:1:2:3::9").widened(to: 64) == AddressPrefix("2001:db8:1:2::/64"))
        #expect(try AddressPrefix("192.0.2.0/24").widened(to: 28) == AddressPrefix("192.0.2.0/24"))
    }

    @Test("containment is one way and never across families")
    func containment() throws {
        let subnet = try AddressPrefix("198.51.100.0/24")
        #expect(subnet.contains(try AddressPrefix("198.51.100.7")))
        #expect(!(try AddressPrefix("198.51.100.7")).contains(subnet))
        #expect(!subnet.contains(try AddressPrefix("198.51.101.7")))
        #expect(!(try AddressPrefix("::/0")).contains(subnet))
    }
}
