import CLibBPF
import Testing
@testable import GatewardenKernel

/// libbpf prints a rejected program's verifier log as one message, its reason at the end.
@Suite("libbpf's log")
struct LibBPFLogTests {
    @Test("a message far past 4 KiB is kept whole: the reason at the end of a long verifier log reaches the error")
    func longMessage() {
        let reason = "R1 invalid mem access 'scalar'"
        let verifierLog = (0..<3000).map { "\($0): (b7) r0 = 0 ; R0_w=0\n" }.joined() + "3000: (61) r0 = *(u32 *)(r1 +0)\n"
            + reason + "\nprocessed 3001 insns (limit 1000000)\n"
        let (_, captured) = LibBPFLog.shared.capturing {
            verifierLog.withCString { body in
                "prog 'gatewarden_xdp': -- BEGIN PROG LOAD LOG --\n%s-- END PROG LOAD LOG --\n".withCString { format in
                    withVaList([body]) { _ = LibBPFLog.shared.receive(LIBBPF_WARN, format, $0) }
                }
            }
        }
        #expect(captured.utf8.count > 64 * 1024)
        #expect(captured == "prog 'gatewarden_xdp': -- BEGIN PROG LOAD LOG --\n" + verifierLog + "-- END PROG LOAD LOG --\n")
        #expect(LibBPFLog.tail(captured).contains(reason), "the error's detail ends with the reason")
    }

    @Test("debug messages are left out")
    func debugLeftOut() {
        let (_, captured) = LibBPFLog.shared.capturing {
            "%s".withCString { format in withVaList([format]) { _ = LibBPFLog.shared.receive(LIBBPF_DEBUG, format, $0) } }
        }
        #expect(captured.isEmpty)
    }
}
