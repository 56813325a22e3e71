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
        let mtu = try namespace.perform { () -> Int32 in
            let socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard socket >= 0 else { return -1 }
            defer { close(socket) }
            return gw_interface_mtu(socket, name)
        }
        guard mtu > 0 else { throw KernelError.fromErrno("read the MTU of '\(name)' in \(namespace)") }
        return Int(mtu)
    }

    /// The name of the interface's driver as ethtool reports it ("veth", "virtio_net"); fails naming
    /// the interface.
    public static func driver(of name: String, in namespace: NetworkNamespace = .current) throws -> String {
        let driver = try namespace.perform { () -> String? in
            let socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard socket >= 0 else { return nil }
            defer { close(socket) }
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
        let answer = try namespace.perform { () -> (Int32, [UInt8]) in
            let socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard socket >= 0 else { return (-1, []) }
            defer { close(socket) }
            var address = [UInt8](repeating: 0, count: 6)
            return (gw_interface_hardware_address(socket, name, &address), address)
        }
        guard answer.0 >= 0 else { throw KernelError.fromErrno("read the hardware address of '\(name)' in \(namespace)") }
        return answer.0 == Int32(ARPHRD_ETHER) ? answer.1 : nil
    }
}
