import Foundation
import Testing
@testable import GatewardenServe

@Suite("Collapsing nftables element arrays into counts")
struct ElementArrayCounterTests {
    @Test("counts top-level items whatever they contain, and leaves the rest intact")
    func collapses() throws {
        let json = #"{"nftables": [{"set": {"name": "b,\"x\"", "size": 65536, "elem": [1, {"elem": {"val": "1.2.3.4", "timeout": 3600}}, "a,b]", [2, 3]]}}, {"rule": {"comment": "elem", "expr": []}}]}"#
        let collapsed = ElementArrayCounter.collapse(json)
        #expect(collapsed == #"{"nftables": [{"set": {"name": "b,\"x\"", "size": 65536, "elem": 4}}, {"rule": {"comment": "elem", "expr": []}}]}"#)
        let listing = try NFTablesListing(json: collapsed)
        #expect(listing.sets == [.init(name: "b,\"x\"", capacity: 65536, elements: 4)])
    }

    @Test("an empty array counts 0; a listing without sets is unchanged")
    func edges() {
        #expect(ElementArrayCounter.collapse(#"{"set": {"elem": [ ]}}"#) == #"{"set": {"elem": 0}}"#)
        let plain = #"{"nftables": [{"table": {"name": "gatewarden"}}]}"#
        #expect(ElementArrayCounter.collapse(plain) == plain)
    }

    @Test("65,000 elements collapse to one number")
    func large() throws {
        let elements = (0..<65_000).map { "\"172.16.\($0 >> 8).\($0 & 0xff)\"" }.joined(separator: ", ")
        let json = #"{"nftables": [{"set": {"name": "big", "size": 65536, "elem": [\#(elements)]}}]}"#
        let listing = try NFTablesListing(json: ElementArrayCounter.collapse(json))
        #expect(listing.sets.first?.elements == 65_000)
    }
}
