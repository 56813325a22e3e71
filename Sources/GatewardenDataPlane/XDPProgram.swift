/// Facts about the XDP program in bpf/gatewarden_xdp.c that user space needs by name.
public enum XDPProgram {
    /// The program's function name in the object (`SEC("xdp") int gatewarden_xdp(...)`).
    public static let name = "gatewarden_xdp"
}
