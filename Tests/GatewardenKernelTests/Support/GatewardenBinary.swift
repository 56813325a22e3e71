import Foundation

/// The `gatewarden` executable SwiftPM built beside the test bundle.
enum GatewardenBinary {
    static let path: String = {
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
