import Foundation
import GatewardenKernel
import Testing

/// A fresh machine has no bpffs at /sys/fs/bpf: `load` mounts it and says so, or, where it
/// cannot, fails with one line saying what to run, leaving nothing behind.
@Suite("No bpffs mounted, as on a fresh machine", .serialized, .enabled(if: Privileges.isRoot, Privileges.reason))
struct FreshMachineTests {
    @Test("load mounts bpffs where it is missing; status finds the instance; unload removes it")
    func loadMountsMissingFilesystem() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let gatewarden = GatewardenBinary.path
        let instance = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        let pins = try lab.gatewayLayout().directory

        let steps = try FreshMountNamespace.run([
            ["mountpoint", "-q", "/sys/fs/bpf"],
            [gatewarden, "load"] + instance,
            ["findmnt", "--noheadings", "--output", "FSTYPE", "/sys/fs/bpf"],
            ["ip", "-n", lab.gateway, "-d", "link", "show", lab.gatewayInterface],
            [gatewarden, "status", "--netns", lab.gateway],
            [gatewarden, "load"] + instance,
            ["findmnt", "--noheadings", "--output", "FSTYPE", "/sys/fs/bpf"],
            [gatewarden, "unload"] + instance,
            [gatewarden, "status", "--netns", lab.gateway],
            ["test", "-e", pins],
        ])
        let (unmounted, load, mounted, link, status, reload, mountedOnce, unload, statusAfter, pinsLeft) =
            (steps[0], steps[1], steps[2], steps[3], steps[4], steps[5], steps[6], steps[7], steps[8], steps[9])

        #expect(unmounted.status != 0, "the namespace must start without bpffs at /sys/fs/bpf")
        #expect(load.status == 0, "load: \(load.stderr)")
        #expect(load.stderr.contains("gatewarden: mounted bpffs at /sys/fs/bpf (it was not mounted)"), "load: \(load.stderr)")
        #expect(load.stdout.contains("attached XDP to '\(lab.gatewayInterface)'"))
        #expect(mounted.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "bpf")
        #expect(link.stdout.contains("prog/xdp id"))
        #expect(status.status == 0)
        #expect(status.stdout.contains("\(lab.gatewayInterface) (network namespace '\(lab.gateway)'):"), "status: \(status.stdout)")
        #expect(status.stdout.contains("program:   id "), "status: \(status.stdout)")
        // Loading again finds the bpffs it mounted: no second mount stacked on the first.
        #expect(reload.status == 0, "reload: \(reload.stderr)")
        #expect(!reload.stderr.contains("mounted bpffs"))
        #expect(mountedOnce.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "bpf")
        #expect(unload.status == 0, "unload: \(unload.stderr)")
        #expect(unload.stdout.contains("removed XDP program on '\(lab.gatewayInterface)'"))
        #expect(statusAfter.stdout.contains("Gatewarden is not loaded in network namespace '\(lab.gateway)'"))
        #expect(pinsLeft.status != 0, "pins left at \(pins)")

        // Nothing left in the lab, and nothing of this instance in the test's own mount namespace (other
        // tests running beside this one may mount bpffs in it: only this lab's pins are this test's).
        #expect(try !lab.inGateway(["ip", "-d", "link", "show", lab.gatewayInterface]).stdout.contains("xdp"))
        #expect(try !lab.inGateway(["nft", "list", "tables"]).stdout.contains("gatewarden"))
        #expect(!FileManager.default.fileExists(atPath: pins))
    }

    @Test("two loads racing on a machine without bpffs mount it once and both find their pins")
    func concurrentLoadsMountOnce() throws {
        let first = try LabNetwork()
        defer { first.remove() }
        let second = try LabNetwork()
        defer { second.remove() }
        let script = #"""
            "$0" load --interface "$1" --netns "$2" & a=$!
            "$0" load --interface "$1" --netns "$3" & b=$!
            wait $a && wait $b
            """#
        let steps = try FreshMountNamespace.run([
            ["sh", "-c", script, GatewardenBinary.path, first.gatewayInterface, first.gateway, second.gateway],
            ["findmnt", "--noheadings", "--output", "FSTYPE", "/sys/fs/bpf"],
            [GatewardenBinary.path, "status", "--netns", first.gateway],
            [GatewardenBinary.path, "status", "--netns", second.gateway],
            // Unloaded in the mount namespace that holds the pins: the host keeps nothing of theirs.
            [GatewardenBinary.path, "unload", "--interface", first.gatewayInterface, "--netns", first.gateway],
            [GatewardenBinary.path, "unload", "--interface", second.gatewayInterface, "--netns", second.gateway],
        ])
        #expect(steps[0].status == 0, "loads: \(steps[0].stderr)")
        #expect(steps[0].stderr.components(separatedBy: "mounted bpffs at /sys/fs/bpf").count - 1 == 1, "loads: \(steps[0].stderr)")
        #expect(steps[1].stdout.split(separator: "\n") == ["bpf"], "mounts at /sys/fs/bpf: \(steps[1].stdout)")
        #expect(steps[2].stdout.contains("program:   id "), "status: \(steps[2].stdout)")
        #expect(steps[3].stdout.contains("program:   id "), "status: \(steps[3].stdout)")
        #expect(steps[4].status == 0 && steps[5].status == 0, "unload: \(steps[4].stderr) \(steps[5].stderr)")
    }

    @Test("where bpffs cannot be mounted, load fails with one line naming /sys/fs/bpf and the command, leaving nothing")
    func unmountableFilesystem() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        // `ip netns exec` gives the command its own mount namespace with a fresh sysfs, so no bpffs is
        // at /sys/fs/bpf there; without CAP_SYS_ADMIN (dropped from the bounding set before the exec)
        // it cannot mount one. Without --netns: the command already runs in the gateway namespace.
        try #require(lab.inGateway(["mountpoint", "-q", "/sys/fs/bpf"], check: false).status != 0)
        let result = try lab.inGateway(["setpriv", "--bounding-set", "-sys_admin",
                                        GatewardenBinary.path, "load", "--interface", lab.gatewayInterface], check: false)

        #expect(result.status != 0)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr: \(result.stderr)")
        #expect(lines.first?.contains("bpffs is not mounted at /sys/fs/bpf") == true, "stderr: \(result.stderr)")
        #expect(lines.first?.contains("`mount -t bpf bpf /sys/fs/bpf`") == true, "stderr: \(result.stderr)")
        #expect(try !lab.inGateway(["ip", "-d", "link", "show", lab.gatewayInterface]).stdout.contains("xdp"))
        #expect(try !lab.inGateway(["nft", "list", "tables"]).stdout.contains("gatewarden"))
    }

    @Test("read-only commands find no instance without bpffs and mount nothing")
    func readersMountNothing() throws {
        let lab = try LabNetwork()
        defer { lab.remove() }
        let instance = ["--interface", lab.gatewayInterface, "--netns", lab.gateway]
        let steps = try FreshMountNamespace.run([
            [GatewardenBinary.path, "status", "--netns", lab.gateway],
            [GatewardenBinary.path, "block", "203.0.113.0/24"] + instance,
            [GatewardenBinary.path, "unload"] + instance,
            ["mountpoint", "-q", "/sys/fs/bpf"],
        ])
        #expect(steps[0].status == 0)
        #expect(steps[0].stdout.contains("Gatewarden is not loaded in network namespace '\(lab.gateway)' (no bpffs at /sys/fs/bpf"))
        for step in [steps[1], steps[2]] {
            #expect(step.status != 0)
            #expect(step.stderr.contains("Gatewarden is not loaded on '\(lab.gatewayInterface)'"), "\(step.arguments[1]): \(step.stderr)")
            #expect(step.stderr.contains("no bpffs at /sys/fs/bpf"), "\(step.arguments[1]): \(step.stderr)")
        }
        #expect(steps[3].status != 0, "a read-only command mounted bpffs")
    }
}

@Suite("bpffs errors")
struct BPFFilesystemErrorTests {
    @Test("the mount error is one line naming the place and what to run")
    func mountErrorNamesPlaceAndCommand() {
        let text = String(describing: BPFFilesystem.MountError(path: "/sys/fs/bpf", errno: EPERM))
        #expect(!text.contains("\n"))
        #expect(text.contains("/sys/fs/bpf"))
        #expect(text.contains("`mount -t bpf bpf /sys/fs/bpf`"))
    }

    @Test("a plain directory is not bpffs")
    func plainDirectory() {
        #expect(!BPFFilesystem(path: FileManager.default.temporaryDirectory.path).isMounted)
        #expect(!BPFFilesystem(path: "/nonexistent-\(getpid())").isMounted)
    }
}
