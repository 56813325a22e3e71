import Foundation
import GatewardenKernel
import Testing
import GatewardenDataPlane

@Suite("persist")
struct PersistTests {
    @Test("--dry-run prints, and a real run writes, the policy, the rendered ruleset and a boot unit that loads it")
    func persist() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-persist-\(getpid())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let policy = "allowlist: [203.0.113.0/24]\n"
        let policyFile = directory.appendingPathComponent("in.yaml")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try policy.write(to: policyFile, atomically: true, encoding: .utf8)
        let arguments = ["persist", "--policy", policyFile.path, "--directory", directory.appendingPathComponent("etc").path,
                         "--unit-directory", directory.appendingPathComponent("units").path]

        let dry = try GatewardenBinary.run(arguments + ["--dry-run"])
        #expect(dry.stdout.contains("set allow_v4 { type ipv4_addr; flags interval; elements = { 203.0.113.0/24 }; }"))
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("etc").path), "dry run writes nothing")

        try GatewardenBinary.run(arguments)
        #expect(try String(contentsOf: directory.appendingPathComponent("etc/policy.yaml"), encoding: .utf8) == policy)
        let ruleset = try String(contentsOf: directory.appendingPathComponent("etc/gatewarden.nft"), encoding: .utf8)
        #expect(ruleset.contains("comment \"synproxy-v4\""))
        let unit = try String(contentsOf: directory.appendingPathComponent("units/gatewarden@.service"), encoding: .utf8)
        let binary = URL(fileURLWithPath: GatewardenBinary.path).resolvingSymlinksInPath().path
        #expect(unit.contains("ExecStart=\(binary) load --interface %i --xdp-mode auto --policy \(directory.path)/etc/policy.yaml"))
        #expect(unit.contains("[Install]\nWantedBy=multi-user.target"))
    }

    @Test("the boot unit names the real binary however it was started, comes after nftables.service and before the network, is hardened, and systemd-analyze verify accepts it")
    func bootUnit() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-persist-unit-\(getpid())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let units = directory.appendingPathComponent("units")
        // Started as a bare name found through PATH, from another working directory: argv[0] says "gatewarden".
        let binaryDirectory = URL(fileURLWithPath: GatewardenBinary.path).deletingLastPathComponent().path
        try Command.run(["sh", "-c", "cd / && PATH=\"$0:$PATH\" exec gatewarden persist --directory \"$1\" --unit-directory \"$2\"",
                         binaryDirectory, directory.appendingPathComponent("etc").path, units.path])
        let unit = try String(contentsOf: units.appendingPathComponent("gatewarden@.service"), encoding: .utf8)
        let binary = URL(fileURLWithPath: GatewardenBinary.path).resolvingSymlinksInPath().path
        #expect(unit.contains("ExecStart=\(binary) load "), "\(unit)")
        #expect(unit.contains("After=sys-subsystem-net-devices-%i.device local-fs.target nftables.service"))
        #expect(unit.contains("Before=network-pre.target"))
        for hardening in ["NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_SYS_ADMIN"] {
            #expect(unit.contains(hardening))
        }
        // ProtectSystem=strict makes /run read-only: the change lock's folder must be made writable.
        #expect(unit.contains("RuntimeDirectory=\(URL(fileURLWithPath: ChangeLock.defaultDirectory).lastPathComponent)\n"))
        // systemd's own reading of an instance of it: no error, and no warning (it warns of unknown keys).
        try FileManager.default.copyItem(at: units.appendingPathComponent("gatewarden@.service"),
                                         to: units.appendingPathComponent("gatewarden@lo.service"))
        let verify = try Command.run(["systemd-analyze", "verify", units.appendingPathComponent("gatewarden@lo.service").path], check: false)
        #expect(verify.status == 0 && verify.stderr.isEmpty && verify.stdout.isEmpty, "\(verify.stderr)\(verify.stdout)")
    }

    @Test("a bad policy persists nothing")
    func badPolicy() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gwt-persist-bad-\(getpid())")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let policyFile = directory.appendingPathComponent("bad.yaml")
        try "protected_ports: [0]\n".write(to: policyFile, atomically: true, encoding: .utf8)
        let result = try GatewardenBinary.run(["persist", "--policy", policyFile.path, "--directory", directory.appendingPathComponent("etc").path,
                                               "--unit-directory", directory.appendingPathComponent("units").path], check: false)
        #expect(result.status != 0)
        #expect(result.stderr.contains("\(policyFile.path):1:19: protected_ports[0]"))
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("etc").path))
    }
}
