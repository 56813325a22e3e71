import Foundation
import GatewardenKernel
import Testing
import GatewardenDataPlane

/// The per-namespace change lock on its own: no root needed (a folder of the test's own stands in
/// for /run/gatewarden).
@Suite("Change lock")
struct ChangeLockTests {
    /// A fresh folder path under the temporary folder, not yet created.
    private static func lockFolder() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("gwt-lock-\(getpid())-\(UUID().uuidString)").path
    }

    @Test("a second change to the namespace waits its time, then fails naming the holder's pid and command")
    func secondHolderFailsNamingFirst() throws {
        let folder = Self.lockFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let held = try ChangeLock.acquire(for: .current, command: "load -i eth0", directory: folder)
        var notices: [String] = []
        let started = ContinuousClock.now
        #expect {
            _ = try ChangeLock.acquire(for: .current, command: "block", waiting: .milliseconds(300), directory: folder,
                                       notice: { notices.append($0) })
        } throws: { error in
            let text = String(describing: error)
            return text.contains("pid \(getpid()), `gatewarden load -i eth0`") && text.contains("the current network namespace")
        }
        #expect(ContinuousClock.now - started >= .milliseconds(300))
        #expect(notices == ["gatewarden: waiting for pid \(getpid()), `gatewarden load -i eth0`, which is changing Gatewarden in the current network namespace"])

        held.release()
        let next = try ChangeLock.acquire(for: .current, command: "block", waiting: .zero, directory: folder)
        next.release()
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty, "a released lock leaves no file")
    }

    @Test("the folder is made private; one that others can write to, or a link, is refused")
    func folderMustBePrivate() throws {
        let folder = Self.lockFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try ChangeLock.holding(.current, command: "load", directory: folder) {}
        var status = stat()
        #expect(stat(folder, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o700)

        chmod(folder, 0o777)
        #expect(throws: KernelError.self) { try ChangeLock.holding(.current, command: "load", directory: folder) {} }

        let link = Self.lockFolder()
        defer { unlink(link) }
        chmod(folder, 0o700)
        #expect(symlink(folder, link) == 0)
        #expect(throws: KernelError.self) { try ChangeLock.holding(.current, command: "load", directory: link) {} }
    }

    @Test("a planted link in place of the lock file is not followed")
    func lockFileLinkRefused() throws {
        let folder = Self.lockFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try ChangeLock.holding(.current, command: "load", directory: folder) {}
        var namespace = stat()
        #expect(stat("/proc/thread-self/ns/net", &namespace) == 0)
        let target = Self.lockFolder()
        defer { unlink(target) }
        #expect(symlink(target, "\(folder)/netns-\(namespace.st_ino).lock") == 0)
        #expect(throws: KernelError.self) { try ChangeLock.holding(.current, command: "load", directory: folder) {} }
        #expect(!FileManager.default.fileExists(atPath: target), "the link's target was not created")
    }
}
