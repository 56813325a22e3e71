import Testing
import GatewardenCore
import GatewardenDataPlane

@Suite("Allow/block list prefilter bits")
struct ListFilterTests {
    private func isSet(_ words: [UInt64], _ index: Int) -> Bool { words[index / 64] & (1 << UInt64(index % 64)) != 0 }

    @Test("an IPv4 /24 sets the bit of its /16 and no other")
    func ipv4() throws {
        let words = ListFilter.words(for: [try AddressPrefix("198.51.100.0/24")])
        #expect(isSet(words, 198 << 8 | 51))
        #expect(words.map(\.nonzeroBitCount).reduce(0, +) == 1)
    }

    @Test("an IPv4 /14 sets the four /16s it spans")
    func shortIPv4() throws {
        let words = ListFilter.words(for: [try AddressPrefix("10.4.0.0/14")])
        #expect((4...7).allSatisfy { isSet(words, 10 << 8 | $0) })
        #expect(words.map(\.nonzeroBitCount).reduce(0, +) == 4)
    }

    @Test("an IPv6 /48 sets the fold of its first 32 bits; shorter than /32 sets everything")
    func ipv6() throws {
        let words = ListFilter.words(for: [try AddressPrefix("2001:db8:bad::/48")])
        #expect(isSet(words, 0x2001 ^ 0x0db8))
        #expect(words.map(\.nonzeroBitCount).reduce(0, +) == 1)
        #expect(ListFilter.words(for: [try AddressPrefix("2001::/16")]).allSatisfy { $0 == .max })
    }
}
