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

    @Test("the network containing an address: host bits cleared; wrong sizes and lengths give nil")
    func containing() throws {
        let host = try AddressPrefix("203.0.113.77")
        #expect(AddressPrefix(containing: host.bytes, length: 24, isIPv4: true)?.description == "203.0.113.0/24")
        #expect(AddressPrefix(containing: host.bytes, length: 24, isIPv4: true) == (try AddressPrefix("203.0.113.0/24")))
        let v6 = try AddressPrefix("2001:db8:1:2:3:4:5:6")
        #expect(AddressPrefix(containing: v6.bytes, length: 64, isIPv4: false)?.description == "2001:db8:1:2::/64")
        #expect(AddressPrefix(containing: host.bytes, length: 33, isIPv4: true) == nil)
        #expect(AddressPrefix(containing: [1, 2, 3, 4], length: 24, isIPv4: true) == nil)
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

/// The IPv4-mapped space: IPv4 sources are held under ::ffff:a.b.c.d, so no IPv6 list entry may reach it.
@Suite("IPv4-mapped space")
struct IPv4MappedSpaceTests {
    @Test("IPv6 prefixes reaching into ::/64 are refused as list entries", arguments: [
        "::/64", "::/1", "::ffff:0:0/96", "::ffff:192.0.2.1", "::1", "::/96", "::192.0.2.1",
    ])
    func refused(text: String) throws {
        let prefix = try AddressPrefix(text)
        #expect(prefix.reachesIPv4MappedSpace)
        #expect(prefix.listProblem != nil)
    }

    @Test("ordinary IPv6 and every IPv4 prefix are fine", arguments: [
        "2001:db8::/32", "2001:db8::1", "1::/64", "8000::/1", "192.0.2.0/24", "0.0.0.0/8", "255.255.255.255",
    ])
    func accepted(text: String) throws {
        let prefix = try AddressPrefix(text)
        #expect(!prefix.reachesIPv4MappedSpace)
        #expect(prefix.listProblem == nil)
    }

    @Test("/0 is refused in either family")
    func everything() throws {
        #expect(try AddressPrefix("0.0.0.0/0").listProblem != nil)
        #expect(try AddressPrefix("::/0").listProblem != nil)
    }
}
