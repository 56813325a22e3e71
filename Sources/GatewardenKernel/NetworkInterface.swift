import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Interface lookups in the calling thread's network namespace.
public enum NetworkInterface {
    /// The kernel's index for `name`; fails naming the interface if there is none.
    public static func index(of name: String, in namespace: NetworkNamespace = .current) throws -> UInt32 {
        guard !name.isEmpty, name.utf8.count < Int(IF_NAMESIZE) else {
            throw KernelError(operation: "'\(name)' is not a valid interface name")
        }
        let index = try namespace.perform { if_nametoindex(name) }
        guard index != 0 else {
            throw KernelError(operation: "interface '\(name)' does not exist in \(namespace)")
        }
        return index
    }

    /// The interface's MTU; fails naming the interface.
    public static func mtu(of name: String, in namespace: NetworkNamespace = .current) throws -> Int {
        let mtu = try withSocket(in: namespace) { socket -> Int32? in
            let mtu = gw_interface_mtu(socket, name)
            return mtu > 0 ? mtu : nil
        }
        guard let mtu else { throw KernelError.fromErrno("read the MTU of '\(name)' in \(namespace)") }
        return Int(mtu)
    }

    /// The name of the interface's driver as ethtool reports it ("veth", "virtio_net"); fails naming
    /// the interface.
    public static func driver(of name: String, in namespace: NetworkNamespace = .current) throws -> String {
        let driver = try withSocket(in: namespace) { socket -> String? in
            var buffer = [CChar](repeating: 0, count: 64)
            guard gw_interface_driver(socket, name, &buffer, UInt(buffer.count)) == 0 else { return nil }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        guard let driver else { throw KernelError.fromErrno("read the driver of '\(name)' in \(namespace)") }
        return driver
    }

    /// The interface's Ethernet address, or nil when it is not an Ethernet interface (a WireGuard or
    /// L3 tunnel device has none); fails naming the interface.
    public static func ethernetAddress(of name: String, in namespace: NetworkNamespace = .current) throws -> [UInt8]? {
        let answer = try withSocket(in: namespace) { socket -> (type: Int32, address: [UInt8])? in
            var address = [UInt8](repeating: 0, count: 6)
            let type = gw_interface_hardware_address(socket, name, &address)
            return type >= 0 ? (type, address) : nil
        }
        guard let answer else { throw KernelError.fromErrno("read the hardware address of '\(name)' in \(namespace)") }
        return answer.type == Int32(ARPHRD_ETHER) ? answer.address : nil
    }

    /// Runs `body` with a socket of `namespace`, which interface ioctls need (any socket of the interface's
    /// namespace), closed afterwards. nil from `body`, or no socket, leaves errno saying why.
    private static func withSocket<Result>(in namespace: NetworkNamespace, _ body: (Int32) -> Result?) throws -> Result? {
        try namespace.perform { () -> Result? in
            let socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard socket >= 0 else { return nil }
            defer { close(socket) }
            return body(socket)
        }
    }
}
