import Foundation

/// A second link into a lab's gateway, for its legitimate users: a namespace and a veth pair of their
/// own (198.51.100.0/24). On the Internet, attackers and users are different hosts whose packets meet
/// at the gateway's NIC; on one veth they would also share the sender's queue, where a flood backed
/// up by the receiver (veth holds a sender back while its XDP ring is full) drops the users' packets
/// before the gateway ever sees them, with or without Gatewarden the gateway's doing.
final class UsersLink {
    let namespace: String
    let gatewayInterface = "gw1"
    let userInterface = "us0"
    let gatewayAddress = "198.51.100.1"
    let userAddress = "198.51.100.2"

    private nonisolated(unsafe) static var counter = 0
    private static let lock = NSLock()

    init(lab: LabNetwork) throws {
        let serial = Self.lock.withLock { Self.counter += 1; return Self.counter }
        namespace = "gwt-us-\(getpid())-\(serial)"
        do {
            try Command.run(["ip", "netns", "add", namespace])
            try Command.run(["ip", "link", "add", gatewayInterface, "netns", lab.gateway, "type", "veth",
                             "peer", "name", userInterface, "netns", namespace])
            try Command.run(["ip", "-n", lab.gateway, "addr", "add", "\(gatewayAddress)/24", "dev", gatewayInterface])
            try Command.run(["ip", "-n", namespace, "addr", "add", "\(userAddress)/24", "dev", userInterface])
            try Command.run(["ip", "-n", lab.gateway, "link", "set", gatewayInterface, "up"])
            for interface in ["lo", userInterface] { try Command.run(["ip", "-n", namespace, "link", "set", interface, "up"]) }
            try Command.run(["tc", "-n", namespace, "qdisc", "replace", "dev", userInterface, "root", "pfifo"])
        } catch {
            remove()
            throw error
        }
    }

    /// Removes the namespace (and with it the veth pair).
    func remove() {
        _ = try? Command.run(["ip", "netns", "del", namespace], check: false)
    }
}
