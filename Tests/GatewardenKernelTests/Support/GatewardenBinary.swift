import Foundation

/// The `gatewarden` executable SwiftPM built beside the test bundle.
enum GatewardenBinary {
    /// Where the binaries the tests run keep their ban stores (`GATEWARDEN_STATE_DIR`): a folder of
    /// this test process's, never the host's /var/lib/gatewarden. Each lab removes its namespace's part.
    static let stateDirectory: String = {
        let directory = "/tmp/gatewarden-test-state-\(getpid())"
        setenv("GATEWARDEN_STATE_DIR", directory, 1)
        return directory
    }()

    /// Removes the ban store of `namespace`, and the test folder once it holds nothing else.
    static func removeState(ofNamespace namespace: String) {
        try? FileManager.default.removeItem(atPath: "\(stateDirectory)/netns/\(namespace)")
        rmdir("\(stateDirectory)/netns")
        rmdir(stateDirectory)
    }

    static let path: String = {
        _ = stateDirectory
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().deletingLastPathComponent(),
            Bundle.main.bundleURL.deletingLastPathComponent(),
        ].map { $0.appendingPathComponent("gatewarden").path }
        if let override = ProcessInfo.processInfo.environment["GATEWARDEN_BIN"] { return override }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }()

    @discardableResult
    static func run(_ arguments: [String], check: Bool = true) throws -> Command.Result {
        try Command.run([path] + arguments, check: check)
    }
}
