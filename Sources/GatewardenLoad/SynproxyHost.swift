import Foundation
import GatewardenKernel
import GatewardenPolicy
import GatewardenDataPlane

/// What the ruleset's synproxy needs from the host it runs on.
///
/// synproxy answers SYNs itself, so its SYN-ACK must promise what the server will do (the MSS of the
/// interface, the window scale and options of the namespace's TCP stack). And the ACK that returns
/// a cookie must reach synproxy as `ct state invalid`: with `nf_conntrack_tcp_loose` on (the
/// default), conntrack would instead adopt it as an established connection the server never saw.
public enum SynproxyHost {
    public static let looseTracking = "net/netfilter/nf_conntrack_tcp_loose"

    /// The handshake options for `interface`, read from the kernel.
    static func handshakeOptions(interface: String, in namespace: NetworkNamespace) throws -> HandshakeOptions {
        // A switch that reads 0 is off; a missing one keeps Linux's default, on.
        func enabled(_ name: String) throws -> Bool { try Sysctl.read(name, in: namespace).map { $0 != "0" } ?? true }
        return HandshakeOptions(
            mtu: try NetworkInterface.mtu(of: interface, in: namespace),
            tcpRmemMax: try Sysctl.integers("net/ipv4/tcp_rmem", in: namespace)?.last ?? HandshakeOptions.defaultTCPRmemMax,
            rmemMax: try Sysctl.integers("net/core/rmem_max", in: namespace)?.first ?? HandshakeOptions.defaultRmemMax,
            windowScaling: try enabled("net/ipv4/tcp_window_scaling"),
            timestamps: try enabled("net/ipv4/tcp_timestamps"),
            selectiveAcknowledgements: try enabled("net/ipv4/tcp_sack"))
    }

    /// What nf_conntrack_tcp_loose was before Gatewarden turned it off.
    private static func looseTrackingRecord(in namespace: NetworkNamespace) -> NamespaceRecord {
        NamespaceRecord(namespace: namespace, name: "nf_conntrack_tcp_loose")
    }

    /// Puts loose TCP tracking back as Gatewarden found it, once no synproxy needs it off (observe
    /// mode, or the table removed), saying so; nothing when Gatewarden did not change it.
    static func restoreLooseTracking(in namespace: NetworkNamespace) throws {
        let record = looseTrackingRecord(in: namespace)
        guard let value = try record.read() else { return }
        try Sysctl.write(looseTracking, value, in: namespace)
        try record.remove()
        FileHandle.standardError.write(Data(("gatewarden: put net.netfilter.nf_conntrack_tcp_loose back to \(value) in "
            + "\(namespace), as it was before Gatewarden's synproxy\n").utf8))
    }

    /// The same, once the change it follows is done: a failure is said, not thrown.
    static func restoreLooseTrackingOrWarn(in namespace: NetworkNamespace) {
        do {
            try restoreLooseTracking(in: namespace)
        } catch {
            FileHandle.standardError.write(Data("gatewarden: could not put nf_conntrack_tcp_loose back: \(error)\n".utf8))
        }
    }

    /// Turns loose TCP tracking off in the namespace (nf_conntrack is loaded by the ruleset's dry
    /// run), saying so when it changes it. Connections already tracked are unaffected; one that
    /// conntrack has never seen is no longer picked up mid-stream.
    /// Returns the record it made of the value it found, for a failed load to remove.
    @discardableResult
    static func requireStrictTracking(in namespace: NetworkNamespace) throws -> NamespaceRecord? {
        guard let current = try Sysctl.read(looseTracking, in: namespace) else {
            throw KernelError(operation: "nf_conntrack is not loaded in \(namespace) (no \(Sysctl.path(looseTracking))); "
                + "synproxy needs it: run `modprobe nf_conntrack`")
        }
        guard current != "0" else { return nil }
        // Kept until a load in observe mode or the last unload puts it back; a value the host had
        // set to 0 itself is not recorded, so it stays 0.
        let record = looseTrackingRecord(in: namespace)
        guard try record.read() == nil else {
            try Sysctl.write(looseTracking, "0", in: namespace)
            return nil
        }
        try record.write(current)
        do {
            try Sysctl.write(looseTracking, "0", in: namespace)
        } catch {
            try? record.remove()
            throw error
        }
        FileHandle.standardError.write(Data(("gatewarden: set net.netfilter.nf_conntrack_tcp_loose=0 in \(namespace) "
            + "(synproxy needs the handshake's ACK to reach it untracked); connections to the protected ports that "
            + "conntrack has not seen are refused from now on (roll out with --observe first: it tracks them)\n").utf8))
        return record
    }
}
