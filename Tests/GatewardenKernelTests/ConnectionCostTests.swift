import Foundation
import GatewardenKernel
import Testing

/// The XDP limits are packets per second, meant for floods. A client's own connection is not one: a
/// segment the host holds a socket for (ACK set, SYN and RST clear) costs a sixteenth of a packet, so a
/// download's ACKs or an upload's data stay far below the limits; an ACK that belongs to no connection
/// (an ACK flood) still costs a whole packet.
@Suite("Segments of held connections against the XDP limits", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct ConnectionCostTests {
    /// A lab with Gatewarden loaded (the default policy: 1000/s per source, 500/s per /24) and every
    /// offload off on the veth pair, so segments are MTU-sized and each is received alone, as from a NIC
    /// without GRO: the client ACKs every second segment.
    private func withLoadedLab(_ body: (LabNetwork) throws -> Void) throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let arguments = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        defer { _ = try? GatewardenBinary.run(["unload"] + arguments, check: false) }
        for (namespace, interface) in [(lab.gateway, lab.gatewayInterface), (lab.client, lab.clientInterface)] {
            try Command.run(["ip", "netns", "exec", namespace, "ethtool", "-K", interface, "tso", "off", "gso", "off", "gro", "off"])
        }
        try GatewardenBinary.run(["load"] + arguments)
        try body(lab)
    }

    @Test("a 10 MB/s upload, seven times the per-subnet limit in segments: nothing dropped, no offender")
    func upload() throws {
        try withLoadedLab { lab in
            // The client paces itself (SO_MAX_PACING_RATE) to 10 MB/s in MTU-sized segments: about 7,000 a
            // second, fourteen times the per-subnet limit at a packet each, under its limit at a sixteenth.
            // (A download's ACKs are the same case; this kernel's receiver acknowledges too rarely over veth
            // for them to reach the limits.)
            let server = try NamespacePython(namespace: lab.gateway, script: """
                import socket
                listener = socket.create_server(("\(lab.gatewayAddress)", 80))
                print("ready", flush=True)
                connection, _ = listener.accept()
                received = 0
                while chunk := connection.recv(1 << 16):
                    received += len(chunk)
                print(received, flush=True)
                """)
            defer { server.stop() }
            let before = try lab.gatewayReceivedPackets()
            let upload = try Command.run(["ip", "netns", "exec", lab.client, "timeout", "30", "python3", "-c", """
                import socket, time
                sock = socket.create_connection(("\(lab.gatewayAddress)", 80), timeout=10)
                sock.setsockopt(socket.SOL_SOCKET, 47, 10_000_000)  # SO_MAX_PACING_RATE, bytes/s
                start = time.monotonic()
                sock.sendall(b"x" * 30_000_000)
                sock.shutdown(socket.SHUT_WR)
                sock.recv(1)
                print(time.monotonic() - start)
                """])
            let seconds = Double(upload.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            let segments = try lab.gatewayReceivedPackets() - before
            let perSecond = seconds > 0 ? Double(segments) / seconds : 0
            let maps = try lab.gatewayInstance().maps()
            let dropped = try maps.readStatistics().filter { $0.action == "drop" }.reduce(0) { $0 + $1.packets }
            print("upload: 30000000 bytes in \(String(format: "%.2f", seconds)) s; the client sent \(segments) "
                + "packets (\(Int(perSecond))/s); XDP dropped \(dropped)")
            #expect(seconds > 0, "the upload completed: \(upload.stderr)")
            #expect(perSecond > 3000, "the client's packet rate must exceed the limits for this test to mean anything")
            #expect(dropped == 0, "XDP dropped packets of the client's own connection")
            #expect(try maps.rateOffenders().isEmpty, "the uploading client was recorded as an offender")
        }
    }

    @Test("ACKs that belong to no connection, from one source, are held to the per-subnet limit as any packet")
    func ackFlood() throws {
        try withLoadedLab { lab in
            // 20,000 pure ACKs to 443 from the client's address, from ports no connection uses, as fast as
            // the client sends them: well over a second of the per-subnet allowance (500/s, burst 1000).
            let result = try Command.run(["ip", "netns", "exec", lab.client, "timeout", "30", "python3", "-c", """
                import socket, struct, time
                sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
                start = time.monotonic()
                for i in range(20_000):
                    segment = struct.pack("!HHIIBBHHH", 20_000 + i % 10_000, 443, i, 1, 5 << 4, 0x10, 64240, 0, 0)
                    sock.sendto(segment, ("\(lab.gatewayAddress)", 0))
                print(time.monotonic() - start)
                """])
            let seconds = Double(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            let maps = try lab.gatewayInstance().maps()
            let passed = try maps.packets(action: "pass", reason: "within_limit")
            let dropped = try maps.packets(action: "drop", reason: "rate_subnet") + maps.packets(action: "drop", reason: "rate_ip")
            let allowance = 1000 + 500 * seconds
            print("ACK flood: 20000 sent in \(String(format: "%.2f", seconds)) s; XDP passed \(passed), dropped \(dropped); "
                + "the per-subnet allowance \(Int(allowance))")
            #expect(Double(passed) <= allowance * 1.1, "ACKs with no connection passed beyond the per-subnet limit")
            #expect(passed + dropped >= 19_000, "the flood reached XDP")
        }
    }
}
