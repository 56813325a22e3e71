@_exported import GatewardenBPF

// The benchmark's baseline programs (bpf/bench/*.c), compiled by the BPF build plugin into
// extensions of `EmbeddedBPF`: `EmbeddedBPF.xdpPass` and `EmbeddedBPF.naiveFixedWindow`.
// They live in their own target so the `gatewarden` binary never carries them.
