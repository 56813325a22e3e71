import Foundation
import GatewardenKernel
import GatewardenDataPlane

/// Two network namespaces joined by a veth pair: a gateway side where Gatewarden is loaded
/// and a client side that sends traffic. Addresses come from TEST-NET-1 (192.0.2.0/24) and
/// live only inside these namespaces.
///
/// Names are unique per process and instance, so parallel runs never collide; `remove()`
/// deletes both namespaces (and with them the veth pair), and tests call it in a `defer`.
final class LabNetwork {
    let gateway: String
    let client: String
    let gatewayInterface = "gw0"
    let clientInterface = "cl0"
    let gatewayAddress = "192.0.2.1"
    let clientAddress = "192.0.2.2"

    private nonisolated(unsafe) static var counter = 0
    private static let lock = NSLock()

    init() throws {
        let serial = Self.lock.withLock { Self.counter += 1; return Self.counter }
        let tag = "\(getpid())-\(serial)"
        gateway = "gwt-gw-\(tag)"
        client = "gwt-cl-\(tag)"
        do {
            try Command.run(["ip", "netns", "add", gateway])
            try Command.run(["ip", "netns", "add", client])
            try Command.run(["ip", "link", "add", gatewayInterface, "netns", gateway, "type", "veth",
                             "peer", "name", clientInterface, "netns", client])
            try Command.run(["ip", "-n", gateway, "addr", "add", "\(gatewayAddress)/24", "dev", gatewayInterface])
            try Command.run(["ip", "-n", client, "addr", "add", "\(clientAddress)/24", "dev", clientInterface])
            for (namespace, interface) in [(gateway, gatewayInterface), (client, clientInterface)] {
                try Command.run(["ip", "-n", namespace, "link", "set", "lo", "up"])
                try Command.run(["ip", "-n", namespace, "link", "set", interface, "up"])
            }
            try queueClientInterface()
        } catch {
            remove()
            throw error
        }
    }

    /// Deletes the veth pair and makes it again, as a driver reload or a re-created bond would.
    func recreateLink() throws {
        try Command.run(["ip", "-n", gateway, "link", "del", gatewayInterface])
        try Command.run(["ip", "link", "add", gatewayInterface, "netns", gateway, "type", "veth",
                         "peer", "name", clientInterface, "netns", client])
        try Command.run(["ip", "-n", gateway, "addr", "add", "\(gatewayAddress)/24", "dev", gatewayInterface])
        try Command.run(["ip", "-n", client, "addr", "add", "\(clientAddress)/24", "dev", clientInterface])
        for (namespace, interface) in [(gateway, gatewayInterface), (client, clientInterface)] {
            try Command.run(["ip", "-n", namespace, "link", "set", interface, "up"])
        }
        try queueClientInterface()
    }

    /// A queue in front of the client's veth, as a real NIC has (veth has none): with XDP on the gateway
    /// side, veth stops its queue while the gateway's ring is full, and without a qdisc the client's
    /// packets would be dropped at the sender, a legitimate flow's beside a flood's. Each socket can
    /// hold only its send buffer's worth in the queue (a few hundred packets, under the queue's 1000),
    /// so a flooding socket blocks rather than crowding the others out.
    private func queueClientInterface() throws {
        try Command.run(["tc", "-n", client, "qdisc", "replace", "dev", clientInterface, "root", "pfifo"])
    }

    /// Deletes both namespaces; safe to call more than once.
    func remove() {
        for namespace in [gateway, client] {
            _ = try? Command.run(["ip", "netns", "del", namespace], check: false)
            GatewardenBinary.removeState(ofNamespace: namespace)
        }
    }

    /// Sends `count` TCP SYNs from the client to the gateway's `port`: each a connect() that ends in a
    /// reset (refused by a closed port, or, behind Gatewarden's synproxy, reset once the handshake it
    /// completed reaches the closed port): exactly one SYN per attempt, no retransmissions.
    func sendSYNs(count: Int, port: Int) throws {
        let script = """
        import socket, errno
        for _ in range(\(count)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(("\(gatewayAddress)", \(port)))
            except (ConnectionRefusedError, ConnectionResetError):
                pass
            finally:
                s.close()
        """
        try Command.run(["ip", "netns", "exec", client, "python3", "-c", script])
    }

    /// Runs a command inside the gateway namespace.
    @discardableResult
    func inGateway(_ arguments: [String], check: Bool = true) throws -> Command.Result {
        try Command.run(["ip", "netns", "exec", gateway] + arguments, check: check)
    }
}

extension LabNetwork {
    /// Starts a UDP flood from the client to the gateway's `port`, bounded by `seconds` and
    /// `maximumPackets`; `finish()` waits and returns how many packets were handed to the kernel.
    func startUDPFlood(port: Int, seconds: Double, maximumPackets: Int = 2_000_000) throws -> RunningFlood {
        let script = """
        import socket, time
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        end = time.monotonic() + \(seconds)
        sent = 0
        while time.monotonic() < end and sent < \(maximumPackets):
            try:
                s.sendto(b"x" * 64, ("\(gatewayAddress)", \(port)))
                sent += 1
            except OSError:
                time.sleep(0.0001)
        print(sent)
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", client, "python3", "-c", script]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        return RunningFlood(process: process, output: output)
    }
}

/// A flood started by `LabNetwork.startUDPFlood`.
struct RunningFlood {
    let process: Process
    let output: Pipe

    func finish() -> Int {
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Int(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }
}

extension LabNetwork {
    /// Where Gatewarden pins its objects for the gateway interface.
    func gatewayLayout() throws -> PinLayout {
        PinLayout(namespace: try NetworkNamespace(named: gateway), interface: gatewayInterface)
    }

    /// The gateway interface's Gatewarden instance, read from its pins.
    func gatewayInstance() throws -> XDPInstance {
        XDPInstance(layout: try gatewayLayout())
    }
}
