"""Measure the conntrack table: bytes per entry (tracemalloc) and ns per established TCP packet.

A benchmark, not a test.  Run from the checkout:

    .venv/bin/python bench/conntrack_table.py [entries]

Lookup: an established UDP packet of a random flow among 1k, 10k, ... up
to `entries` flows, to show the cost does not grow with the table.

Memory: `entries` connections of each kind are created through track() and
confirm() from packets built with struct, and what tracemalloc sees the
table hold afterwards is divided by the count (packets are dropped as they
go, so only the table remains).  Kinds: "udp" a request and its reply (not
ASSURED), "udp-stream" the same plus a packet 3 s later (ASSURED), "tcp" a
handshake plus data and its ACK (ESTABLISHED, ASSURED).  tracemalloc counts
requested sizes; pymalloc rounds each object up to 16 bytes, a few percent more.  Timing: a TCP bulk transfer with timestamps
and SACK-permitted, data one way and ACKs the other, every packet in window,
run through track() once per table (no repeats, so nothing is a
retransmission), best of 5.
"""
import gc
import struct
import sys
import timeit
import tracemalloc

from tunrouter.conntrack.settings import Settings
from tunrouter.conntrack.table import ConnTable
from tunrouter.core.desc import parse
from tunrouter.wire import ipv4
from tunrouter.wire.l4 import l4_csum

TCP = struct.Struct("!HHIIBBHHH")
SYN_OPTS = bytes([2, 4, 5, 180, 4, 2, 8, 10]) + bytes(8) + bytes([1, 3, 3, 7])   # MSS SACKOK TS WS7
TS_OPTS = bytes([1, 1, 8, 10]) + bytes(8)


def tcp(src, dst, sport, dport, flags, seq, ack, win, opts=b"", data=b""):
    seg = bytearray(TCP.pack(sport, dport, seq, ack, (5 + len(opts) // 4) << 4, flags, win, 0, 0) + opts + data)
    seg[16:18] = l4_csum(src, dst, 6, seg).to_bytes(2, "big")
    return parse(memoryview(bytearray(ipv4.emit(0, 0, 0, 64, 6, src, dst, bytes(seg)))), 0)


def udp(src, dst, sport, dport, data=b"q"):
    return parse(memoryview(bytearray(ipv4.emit(0, 0, 0, 64, 17, src, dst,
                                                struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data))), 0)


def addr(i: int) -> bytes:
    return bytes([10, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF])


def fill(kind: str, n: int) -> ConnTable:
    t = ConnTable(Settings(nf_conntrack_max=0, nf_conntrack_events=0))
    server = bytes([192, 0, 2, 1])
    for i in range(n):
        client, sport = addr(i // 50000 + 1), 10000 + i % 50000
        now = 1000.0 + i * 1e-6
        if kind == "tcp":
            steps = [tcp(client, server, sport, 443, 0x02, 1000, 0, 64240, SYN_OPTS),
                     tcp(server, client, 443, sport, 0x12, 5000, 1001, 65160, SYN_OPTS),
                     tcp(client, server, sport, 443, 0x10, 1001, 5001, 502, TS_OPTS),
                     tcp(client, server, sport, 443, 0x18, 1001, 5001, 502, TS_OPTS, b"x" * 100),
                     tcp(server, client, 443, sport, 0x10, 5001, 1101, 509, TS_OPTS)]
        else:
            steps = [udp(client, server, sport, 53), udp(server, client, 53, sport)]
        for d in steps:
            ct, ctinfo = t.track(d, now)
            if ctinfo == 2:
                t.confirm(ct, now)
        if kind == "udp-stream":         # a packet 3 s later: a stream, ASSURED
            t.track(udp(client, server, sport, 53), now + 3)
    return t


def bytes_per_entry(kind: str, n: int) -> float:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t = fill(kind, n)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert t.count() == n
    return used / n


def ns_per_established_packet(checksum: int, size: int, count: int = 20000) -> float:
    c, s = bytes([10, 0, 1, 2]), bytes([10, 0, 2, 2])
    setup = [tcp(c, s, 40000, 80, 0x02, 1000, 0, 64240, SYN_OPTS),
             tcp(s, c, 80, 40000, 0x12, 5000, 1001, 65160, SYN_OPTS),
             tcp(c, s, 40000, 80, 0x10, 1001, 5001, 502, TS_OPTS)]
    hot, seq = [], 1001
    for _ in range(count):
        hot.append(tcp(c, s, 40000, 80, 0x18, seq, 5001, 502, TS_OPTS, b"x" * size))
        seq += size
        hot.append(tcp(s, c, 80, 40000, 0x10, 5001, seq, 2000, TS_OPTS))
    best = float("inf")
    for _ in range(5):
        t = ConnTable(Settings(nf_conntrack_checksum=checksum))
        for d in setup:
            ct, ctinfo = t.track(d, 100.0)
            t.confirm(ct, 100.0)
        track = t.track

        def run():
            for d in hot:
                track(d, 100.0)
        best = min(best, timeit.timeit(run, number=1))
        assert t.stats.invalid == 0, t.reason
    return best / len(hot) * 1e9


def ns_per_lookup(n: int, count: int = 20000) -> float:
    """An established UDP packet of a random one of n flows: is the lookup cost flat in n?"""
    import random
    t = fill("udp-stream", n)
    server = bytes([192, 0, 2, 1])
    rng = random.Random(1)
    hot = []
    for _ in range(count):
        i = rng.randrange(n)
        hot.append(udp(addr(i // 50000 + 1), server, 10000 + i % 50000, 53))
    track = t.track

    def run():
        for d in hot:
            track(d, 1010.0)
    return min(timeit.timeit(run, number=1) for _ in range(3)) / count * 1e9


if __name__ == "__main__":
    entries = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    for checksum in (0, 1):
        for size in (0, 1448):
            print(f"established TCP, nf_conntrack_checksum={checksum}, {size:4d}-byte segments: "
                  f"{ns_per_established_packet(checksum, size):6.0f} ns/packet")
    n = 1000
    while n <= entries:
        print(f"established UDP packet among {n:>8} entries: {ns_per_lookup(n):6.0f} ns/packet")
        n *= 10
    for kind in ("udp", "udp-stream", "tcp"):
        print(f"{entries} {kind} entries: {bytes_per_entry(kind, entries):6.0f} bytes/entry")
