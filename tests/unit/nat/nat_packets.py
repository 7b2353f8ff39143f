"""Rulesets, packets and checks for the NAT tests.

The unit topology of tests/packets.py (lan0 TUN 10.1.0.1/24, lan1 TAP
10.2.0.1/24, wan0 TUN 203.0.113.1/24) with a nat table loaded and the NAT's
random offsets drawn from a seeded random.Random, so that a remapped port is
known in advance: draws() replays the same generator.  Expected packets are
built with Scapy and compared byte for byte, so every checksum Scapy computes
is checked with them.
"""
import random

from packets import make_router
from scapy.all import ICMP, IP, TCP, UDP, Raw, raw

from tunrouter.conntrack.format import list_line
from tunrouter.core.hooks import engine_for

SEED = 7
H3 = "10.1.0.3"                  # a second host on lan0
SRV2 = "203.0.113.81"            # a second server beyond wan0
FAR = "203.0.113.254"            # a router beyond wan0 that sends ICMP errors
NAT_HEAD = ("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            ":POSTROUTING ACCEPT [0:0]\n")


def nat_router(*rules: str, seed: int = SEED, **kw):
    """make_router(**kw) with these nat-table rules and a seeded NAT generator."""
    r = make_router(**kw)
    r.set_rules(engine_for(NAT_HEAD + "".join(f"{rule}\n" for rule in rules) + "COMMIT\n"))
    r.binder.rng = random.Random(seed)
    return r


def draws(n: int, seed: int = SEED) -> list[int]:
    """The first n search offsets (get_random_u16) a nat_router() draws."""
    rng = random.Random(seed)
    return [rng.getrandbits(16) for _ in range(n)]


def send(r, port: int, pkt, now: float = 0.0) -> list[tuple[int, bytes]]:
    """Feed the Scapy packet pkt to r on port; the frames written, as (port, bytes)."""
    return [(p, bytes(f)) for p, f in r.process(port, memoryview(bytearray(raw(pkt))), now)]


def udp(src: str, dst: str, sport: int, dport: int, data: bytes = b"x", ttl: int = 64, **ip):
    return IP(src=src, dst=dst, ttl=ttl, **ip) / UDP(sport=sport, dport=dport) / Raw(data)


def tcp(src: str, dst: str, sport: int, dport: int, flags: str = "S", seq: int = 1000,
        ack: int = 0, data: bytes = b"", ttl: int = 64, **ip):
    return (IP(src=src, dst=dst, ttl=ttl, **ip)
            / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack) / Raw(data))


def echo(src: str, dst: str, ident: int = 7, seq: int = 1, reply: bool = False, ttl: int = 64,
         data: bytes = b"ping", **ip):
    return IP(src=src, dst=dst, ttl=ttl, **ip) / ICMP(type=0 if reply else 8, id=ident,
                                                      seq=seq) / Raw(data)


def hop(pkt, **changes) -> bytes:
    """pkt as it leaves after one hop (TTL - 1) with these header fields changed.

    changes: src/dst for IP, sport/dport for the TCP or UDP header, id for
    the ICMP query; every checksum recomputed by Scapy.
    """
    p = pkt.copy()
    p.ttl -= 1
    del p.chksum
    l4 = p.payload
    for name, value in changes.items():
        if name in ("src", "dst"):
            setattr(p, name, value)
        else:
            setattr(l4, name, value)
    del l4.chksum
    return raw(p)


def checksums_ok(b: bytes) -> bool:
    """The IPv4 header and TCP/UDP/ICMP checksums of b are what Scapy computes afresh."""
    p = IP(b)
    del p.chksum
    l4 = p.payload
    if not (UDP in p and p[UDP].chksum == 0):
        del l4.chksum
    return raw(p) == b


def lines(r, now: float = 0.0) -> list[str]:
    """`conntrack -L` for r's table, sorted."""
    return sorted(list_line(ct, now) for ct in r.conntrack.conns(now))
