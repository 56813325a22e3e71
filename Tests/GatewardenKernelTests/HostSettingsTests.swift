import Foundation
import GatewardenKernel
import GatewardenTestSupport
import Testing

/// What Gatewarden changes on the host it puts back when it no longer needs it.
extension PolicyEnforcementTests {
    @Test("nf_conntrack_tcp_loose: off while enforcing, back as found in observe mode and after unload; a host's own 0 stays 0")
    func looseTrackingPutBack() throws {
        let (lab, arguments, file) = try lab(policy: Self.policy())
        defer { teardown(lab, arguments, file) }
        func loose() throws -> String {
            try lab.inGateway(["cat", "/proc/sys/net/netfilter/nf_conntrack_tcp_loose"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try loose() == "0", "enforcing needs it off")
        try GatewardenBinary.run(["load", "--observe", "--policy", file.path] + arguments)
        #expect(try loose() == "1", "observe mode has no synproxy: as before Gatewarden")
        try GatewardenBinary.run(["load", "--policy", file.path] + arguments)
        #expect(try loose() == "0")
        try GatewardenBinary.run(["unload"] + arguments)
        #expect(try loose() == "1", "unload leaves the host as it found it")

        // A host that had turned it off itself keeps it off.
        try lab.inGateway(["sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0"])
        try GatewardenBinary.run(["load", "--policy", file.path] + arguments)
        try GatewardenBinary.run(["unload"] + arguments)
        #expect(try loose() == "0")
    }
}
