/// The version this build of Gatewarden is: `gatewarden --version` and `gatewarden_build_info` print it.
public enum GatewardenVersion {
    public static let string = "0.2.0"
}
