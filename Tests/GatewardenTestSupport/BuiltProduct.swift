import Foundation

/// An executable SwiftPM built beside the test bundle (`swift build --build-tests` builds them all).
public enum BuiltProduct {
    public static func path(_ name: String) -> String {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0])
        let candidates = [bundle.deletingLastPathComponent(), bundle.deletingLastPathComponent().deletingLastPathComponent(),
                          Bundle.main.bundleURL.deletingLastPathComponent()].map { $0.appendingPathComponent(name).path }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }
}
