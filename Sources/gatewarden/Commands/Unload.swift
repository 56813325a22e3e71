import ArgumentParser
import GatewardenKernel
import GatewardenLoad

/// `gatewarden unload`: removes exactly what `load` installed.
struct Unload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Detach the XDP program and remove its pins and, with the last instance, the nftables table.",
        discussion: """
        Removes only Gatewarden's own objects: its link and map pins under /sys/fs/bpf/gatewarden, and the \
        table inet gatewarden once no other interface in the namespace runs Gatewarden.
        """
    )

    @OptionGroup var instance: InstanceOptions

    @OptionGroup var lock: ChangeLockOptions

    func run() throws {
        try lock.holding(instance, command: "unload") {
            let deployment = try Deployment(namespace: instance.namespace(), interface: instance.interface)
            for removed in try deployment.remove() {
                print("removed \(removed)")
            }
        }
    }
}
