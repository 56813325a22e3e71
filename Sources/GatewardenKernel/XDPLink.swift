import CLibBPF
#if canImport(Glibc)
import Glibc
#endif

/// How the XDP program runs on an interface.
public enum XDPMode: String, CaseIterable, Sendable {
    /// In the driver, before an skb exists: the fast path.
    case native
    /// After skb allocation, on any interface: slower, for drivers without XDP.
    case generic

    var attachFlags: UInt32 {
        switch self {
        case .native: return UInt32(XDP_FLAGS_DRV_MODE)
        case .generic: return UInt32(XDP_FLAGS_SKB_MODE)
        }
    }
}

/// An XDP attachment held by a pinned bpf_link.
///
/// A link (rather than a netlink attach) makes ownership explicit: the program stays attached
/// while the pin exists, whatever happens to the process that made it; no other tool can
/// silently replace it; and `replaceProgram` swaps programs atomically, with no packet
/// ever seeing an interface without one.
public struct XDPLink: Sendable {
    /// What the kernel says about the link.
    public struct Info: Sendable, Equatable {
        public var linkID: UInt32
        public var programID: UInt32
        /// 0 once the interface is gone (the link is then defunct).
        public var interfaceIndex: UInt32
    }

    public let pinPath: String

    public init(pinPath: String) {
        self.pinPath = pinPath
    }

    public var exists: Bool { access(pinPath, F_OK) == 0 }

    /// Attaches `programFD` to the interface (in `namespace`) and pins the link.
    public static func attach(programFD: Int32, interfaceIndex: UInt32, interface: String, mode: XDPMode,
                              namespace: NetworkNamespace, pinPath: String) throws -> XDPLink {
        let linkFD = try namespace.perform {
            withZeroed(bpf_link_create_opts.self) { options in
                options.pointee.sz = MemoryLayout<bpf_link_create_opts>.size
                options.pointee.flags = mode.attachFlags
                return bpf_link_create(programFD, Int32(interfaceIndex), BPF_XDP, options)
            }
        }
        guard linkFD >= 0 else {
            let reason = -linkFD
            var detail = ""
            if reason == EBUSY || reason == EEXIST,
               let other = try? XDPQuery.attachedProgramID(interfaceIndex: interfaceIndex, namespace: namespace) {
                detail = "interface '\(interface)' already runs XDP program id \(other), which is not Gatewarden's"
            } else if reason == EOPNOTSUPP || reason == EINVAL, mode == .native {
                detail = "the driver of '\(interface)' may not support native XDP; try --xdp-mode generic"
            }
            throw KernelError(operation: "attach XDP (\(mode.rawValue)) to '\(interface)' in \(namespace)",
                              errno: reason, detail: detail)
        }
        let link = FileDescriptor(owning: linkFD)
        guard bpf_obj_pin(link.rawValue, pinPath) == 0 else {
            // Closing the unpinned link detaches the program again: nothing is left behind.
            throw KernelError.fromErrno("pin XDP link at \(pinPath)")
        }
        return XDPLink(pinPath: pinPath)
    }

    private func open() throws -> FileDescriptor {
        let fd = bpf_obj_get(pinPath)
        guard fd >= 0 else { throw KernelError.fromErrno("open pinned XDP link \(pinPath)") }
        return FileDescriptor(owning: fd)
    }

    public func info() throws -> Info {
        let link = try open()
        return try withZeroed(bpf_link_info.self) { raw in
            var length = UInt32(MemoryLayout<bpf_link_info>.size)
            let result = bpf_obj_get_info_by_fd(link.rawValue, raw, &length)
            guard result == 0 else { throw KernelError.fromReturnCode(result, "read XDP link information") }
            return Info(linkID: raw.pointee.id, programID: raw.pointee.prog_id, interfaceIndex: raw.pointee.xdp.ifindex)
        }
    }

    /// The program the link runs now, held open so that a failed change can put it back.
    public func currentProgram() throws -> FileDescriptor {
        let id = try info().programID
        let fd = bpf_prog_get_fd_by_id(id)
        guard fd >= 0 else { throw KernelError.fromReturnCode(fd, "open XDP program id \(id) behind \(pinPath)") }
        return FileDescriptor(owning: fd)
    }

    /// Atomically swaps the attached program for `programFD`.
    public func replaceProgram(with programFD: Int32) throws {
        let link = try open()
        let result = bpf_link_update(link.rawValue, programFD, nil)
        guard result == 0 else { throw KernelError.fromReturnCode(result, "replace the XDP program behind \(pinPath)") }
    }

    /// Detaches the program from the interface and removes the pin.
    public func detach() throws {
        let link = try open()
        let result = bpf_link_detach(link.rawValue)
        // ENOLINK: the interface is already gone, and with it the attachment.
        guard result == 0 || -result == ENOLINK || errno == ENOLINK else {
            throw KernelError.fromReturnCode(result, "detach XDP link \(pinPath)")
        }
        guard unlink(pinPath) == 0 else { throw KernelError.fromErrno("remove pin \(pinPath)") }
    }
}

/// Asks the kernel (over netlink) which XDP program an interface runs.
public enum XDPQuery {
    /// Detaches a program attached over netlink (not through a link), for `load --force`.
    public static func detachForeignProgram(interfaceIndex: UInt32, namespace: NetworkNamespace) throws {
        try namespace.perform {
            try withZeroed(bpf_xdp_query_opts.self) { options in
                options.pointee.sz = MemoryLayout<bpf_xdp_query_opts>.size
                let query = bpf_xdp_query(Int32(interfaceIndex), 0, options)
                guard query == 0 else { throw KernelError.fromReturnCode(query, "query XDP on interface \(interfaceIndex)") }
                let flags: Int32
                switch Int32(options.pointee.attach_mode) {
                case Int32(XDP_ATTACHED_DRV): flags = Int32(XDP_FLAGS_DRV_MODE)
                case Int32(XDP_ATTACHED_SKB): flags = Int32(XDP_FLAGS_SKB_MODE)
                case Int32(XDP_ATTACHED_HW): flags = Int32(XDP_FLAGS_HW_MODE)
                default: return
                }
                let result = bpf_xdp_detach(Int32(interfaceIndex), UInt32(flags), nil)
                guard result == 0 else {
                    throw KernelError.fromReturnCode(result, "detach the XDP program on interface \(interfaceIndex)")
                }
            }
        }
    }

    /// The id of the attached program in any mode, or nil when none is attached.
    public static func attachedProgramID(interfaceIndex: UInt32, namespace: NetworkNamespace) throws -> UInt32? {
        try namespace.perform {
            try withZeroed(bpf_xdp_query_opts.self) { options in
                options.pointee.sz = MemoryLayout<bpf_xdp_query_opts>.size
                let result = bpf_xdp_query(Int32(interfaceIndex), 0, options)
                guard result == 0 else {
                    throw KernelError.fromReturnCode(result, "query XDP on interface \(interfaceIndex)")
                }
                return [options.pointee.prog_id, options.pointee.drv_prog_id, options.pointee.skb_prog_id]
                    .first { $0 != 0 }
            }
        }
    }

    /// The kernel id of a loaded program.
    public static func programID(of programFD: Int32) throws -> UInt32 {
        try withZeroed(bpf_prog_info.self) { raw in
            var length = UInt32(MemoryLayout<bpf_prog_info>.size)
            let result = bpf_obj_get_info_by_fd(programFD, raw, &length)
            guard result == 0 else { throw KernelError.fromReturnCode(result, "read program information") }
            return raw.pointee.id
        }
    }
}
