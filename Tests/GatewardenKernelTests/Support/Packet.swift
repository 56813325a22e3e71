#if canImport(Glibc)
import Glibc
#endif

/// Builds Ethernet frames for BPF_PROG_TEST_RUN: VLAN tags, IPv4 (options, fragments, any IHL),
/// IPv6 (extension headers), TCP and UDP. The IPv4 header checksum is right (the SYN cookie path
/// checks it); the TCP and UDP checksums are left zero: XDP does not verify them.
///
///     let frame = Packet.ipv4(source: [192, 0, 2, 7], transport: .tcp(destinationPort: 443))
///     let short = Array(frame.prefix(20))          // truncated inside the IPv4 header
struct Packet {
    enum Transport {
        case tcp(destinationPort: UInt16, dataOffsetWords: UInt8 = 5)
        case udp(destinationPort: UInt16)
        case raw(protocolNumber: UInt8, payload: [UInt8])
        /// A whole TCP segment: flags, sequence numbers, options (padded to 4 bytes with EOL), payload.
        case segment(TCPSegment)

        var protocolNumber: UInt8 {
            switch self {
            case .tcp, .segment: return 6
            case .udp: return 17
            case .raw(let number, _): return number
            }
        }

        var bytes: [UInt8] {
            switch self {
            case .tcp(let port, let offset):
                var header = [UInt8](repeating: 0, count: 20)
                header[0] = 0xc3; header[1] = 0x50                      // source port 50000
                header[2] = UInt8(port >> 8); header[3] = UInt8(port & 0xff)
                header[12] = offset << 4
                header[13] = 0x02                                       // SYN
                header[14] = 0xff; header[15] = 0xff                    // window
                return header
            case .udp(let port):
                return [0xc3, 0x50, UInt8(port >> 8), UInt8(port & 0xff), 0, 8, 0, 0]
            case .raw(_, let payload):
                return payload
            case .segment(let segment):
                return segment.bytes
            }
        }
    }

    static let gatewayMAC: [UInt8] = [0x02, 0, 0, 0, 0, 1]
    static let clientMAC: [UInt8] = [0x02, 0, 0, 0, 0, 2]

    /// Ethernet header with optional VLAN tags (outer first: 802.1ad, then 802.1Q).
    static func ethernet(etherType: UInt16, vlans: [UInt16] = []) -> [UInt8] {
        var frame = gatewayMAC + clientMAC
        for (index, vlan) in vlans.enumerated() {
            let tpid: UInt16 = (index == 0 && vlans.count == 2) ? 0x88a8 : 0x8100
            frame += [UInt8(tpid >> 8), UInt8(tpid & 0xff), UInt8(vlan >> 8), UInt8(vlan & 0xff)]
        }
        return frame + [UInt8(etherType >> 8), UInt8(etherType & 0xff)]
    }

    static func ipv4(source: [UInt8], destination: [UInt8] = [192, 0, 2, 1], transport: Transport,
                     vlans: [UInt16] = [], options: [UInt8] = [], ihl: UInt8? = nil,
                     fragmentOffset: UInt16 = 0, moreFragments: Bool = false) -> [UInt8] {
        let payload = transport.bytes
        let headerLength = 20 + options.count
        precondition(headerLength % 4 == 0, "IPv4 options pad to 4 bytes")
        let total = headerLength + payload.count
        var header: [UInt8] = [
            0x40 | (ihl ?? UInt8(headerLength / 4)), 0,
            UInt8(total >> 8), UInt8(total & 0xff),
            0x12, 0x34,
            UInt8((moreFragments ? 0x20 : 0) | UInt8(fragmentOffset >> 8)), UInt8(fragmentOffset & 0xff),
            64, transport.protocolNumber, 0, 0,
        ]
        header += source + destination + options
        let checksum = ~onesComplementSum(header)
        header[10] = UInt8(checksum >> 8); header[11] = UInt8(checksum & 0xff)
        return ethernet(etherType: 0x0800, vlans: vlans) + header + payload
    }

    /// An IPv6 extension header in the chain before the transport.
    enum Extension {
        case hopByHop, destinationOptions, routing
        case fragment(offset: UInt16, more: Bool)

        var number: UInt8 {
            switch self {
            case .hopByHop: return 0
            case .routing: return 43
            case .fragment: return 44
            case .destinationOptions: return 60
            }
        }

        func bytes(next: UInt8) -> [UInt8] {
            switch self {
            case .hopByHop, .destinationOptions:
                return [next, 0, 1, 4, 0, 0, 0, 0]            // PadN to 8 bytes
            case .routing:
                return [next, 0, 0, 0, 0, 0, 0, 0]            // type 0, no segments left
            case .fragment(let offset, let more):
                let field = (offset << 3) | (more ? 1 : 0)
                return [next, 0, UInt8(field >> 8), UInt8(field & 0xff), 0, 0, 0, 1]
            }
        }
    }

    static func ipv6(source: [UInt8], destination: [UInt8] = ipv6Address("2001:db8::1"), transport: Transport,
                     extensions: [Extension] = [], vlans: [UInt16] = []) -> [UInt8] {
        var chain: [UInt8] = []
        for (index, ext) in extensions.enumerated() {
            let next = index + 1 < extensions.count ? extensions[index + 1].number : transport.protocolNumber
            chain += ext.bytes(next: next)
        }
        let payload = chain + transport.bytes
        let first = extensions.first?.number ?? transport.protocolNumber
        var header: [UInt8] = [0x60, 0, 0, 0, UInt8(payload.count >> 8), UInt8(payload.count & 0xff), first, 64]
        header += source + destination
        return ethernet(etherType: 0x86dd, vlans: vlans) + header + payload
    }

    /// 16 bytes of an IPv6 address in text form.
    static func ipv6Address(_ text: String) -> [UInt8] {
        var address = in6_addr()
        precondition(inet_pton(AF_INET6, text, &address) == 1, "bad IPv6 address \(text)")
        return withUnsafeBytes(of: &address) { Array($0) }
    }

    static func arp() -> [UInt8] {
        ethernet(etherType: 0x0806) + [UInt8](repeating: 0, count: 28)
    }
}

/// A TCP segment with options, for the SYN cookie tests.
///
///     let syn = TCPSegment(destinationPort: 443, flags: TCPSegment.syn, sequence: 1000,
///                          options: TCPSegment.mss(1460) + TCPSegment.sackPermitted)
struct TCPSegment {
    static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, ack: UInt8 = 0x10

    var sourcePort: UInt16 = 50000
    var destinationPort: UInt16
    var flags: UInt8
    var sequence: UInt32
    var acknowledgement: UInt32 = 0
    var options: [UInt8] = []
    var payload: [UInt8] = []
    var window: UInt16 = 64240
    /// Overrides the data offset (words) that the options imply.
    var dataOffsetWords: UInt8? = nil

    var bytes: [UInt8] {
        var padded = options
        while padded.count % 4 != 0 { padded.append(0) }
        let offset = dataOffsetWords ?? UInt8((20 + padded.count) / 4)
        var header: [UInt8] = []
        header += bigEndian(sourcePort) + bigEndian(destinationPort) + bigEndian(sequence) + bigEndian(acknowledgement)
        header += [offset << 4, flags] + bigEndian(window) + [0, 0, 0, 0]
        return header + padded + payload
    }

    static func mss(_ value: UInt16) -> [UInt8] { [2, 4] + bigEndian(value) }
    static func windowScale(_ shift: UInt8) -> [UInt8] { [3, 3, shift] }
    static let sackPermitted: [UInt8] = [4, 2]
    static func timestamps(_ value: UInt32, echo: UInt32 = 0) -> [UInt8] { [8, 10] + bigEndian(value) + bigEndian(echo) }
    static let nop: [UInt8] = [1]
    /// What Linux puts in a SYN: MSS, SACK-permitted, timestamps, NOP, window scale (20 bytes).
    static func linuxSYNOptions(tsval: UInt32, windowScale shift: UInt8 = 7) -> [UInt8] {
        mss(1460) + sackPermitted + timestamps(tsval) + nop + windowScale(shift)
    }
}

func bigEndian(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xff)] }
func bigEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> (24 - 8 * UInt32($0))) & 0xff) } }

/// The one's complement sum of 16-bit big-endian words (an odd last byte padded with zero).
func onesComplementSum(_ bytes: [UInt8]) -> UInt16 {
    var sum: UInt32 = 0
    var index = 0
    while index < bytes.count {
        sum += UInt32(bytes[index]) << 8 | UInt32(index + 1 < bytes.count ? bytes[index + 1] : 0)
        index += 2
    }
    while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
    return UInt16(sum)
}
