import GatewardenCore

/// The version this binary was built as; `gatewarden_build_info` reports it.
public enum BuildInfo {
    public static let version = GatewardenVersion.string

    public static var family: MetricFamily {
        var family = MetricFamily(name: "gatewarden_build_info",
                                  help: "A metric with a constant 1 labelled by Gatewarden's version.", type: .gauge)
        #if swift(>=6.3)
        let swiftVersion = "6.3"
        #else
        let swiftVersion = "6"
        #endif
        family.add(["version": version, "swift_version": swiftVersion], 1)
        return family
    }
}
