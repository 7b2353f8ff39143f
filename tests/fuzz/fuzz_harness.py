"""A fuzzing harness for the sans-IO core: Router.process() and tick().

A router on the unit topology (tests/packets.py: lan0 TUN, lan1 TAP, wan0 TUN)
with a realistic ruleset: raw CT --helper ftp/irc/tftp/amanda and a NOTRACK,
nat MASQUERADE out of wan0 and a DNAT port forward to a host behind the TAP
port, a stateful filter with LOG, limit, REJECT tcp-reset and icmp.

Feeder.feed() hands the router one frame and checks, for that frame:

* no exception escapes process();
* the port's rx counter moved by one;
* exactly one outcome was counted: forwarded, local, arp, or one drop reason
  (the neighbour drops NEIGH_QUEUE_FULL and NEIGH_FAILED are not outcomes:
  they befall a packet already counted forwarded, after the forwarding
  decision, as the kernel's neighbour layer does) -- or none, when the frame
  is a fragment the reassembly queue now holds (Defrag.reqds moved and no
  datagram completed);
* every frame written goes to an existing port and is not empty;
* no built-in helper faulted (Guard.faults stays empty: a fault is an
  exception in the helper, which the guard contained).

Time advances with every frame and tick() runs whenever next_deadline() has
passed, as the driver does.

Packets come from three sources: valid flows (a handshake and data for each
helper, a port forward, pings, fragments, ARP) built with Scapy once per
parameter set; byte-level mutations of those valid frames; and Hypothesis
strategies built from Scapy layers (test_fuzz_router.py).  For the long run,
a seeded random.Random drives the same generators without Hypothesis.
"""
import random

from packets import (
    H1,
    H2,
    H2_MAC,
    LAN_TAP,
    LAN_TUN,
    R_LAN,
    R_TAP,
    R_WAN,
    ROUTER_MAC,
    SRV,
    WAN,
    make_router,
)
from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, Raw, fragment, raw

from tunrouter.core.hooks import engine_for
from tunrouter.core.verdict import Drop
from tunrouter.wire.checksum import csum, csum_ok
from tunrouter.wire.l4 import l4_csum

MAC = ":".join("%02x" % b for b in ROUTER_MAC)
PORTS = (LAN_TUN, LAN_TAP, WAN)
FWD_PORT = 8080          # wan0:8080 is forwarded to H2:80 behind the TAP port

RULES = f"""*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
-A PREROUTING -p tcp -m tcp --dport 6667 -j CT --helper irc
-A PREROUTING -p udp -m udp --dport 69 -j CT --helper tftp
-A PREROUTING -p udp -m udp --dport 10080 -j CT --helper amanda
-A PREROUTING -p udp -m udp --dport 5353 -j NOTRACK
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan0 -p tcp -m tcp --dport {FWD_PORT} -j DNAT --to-destination {H2}:80
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset
-A INPUT -p icmp -m limit --limit 50/sec --limit-burst 20 -j ACCEPT
-A INPUT -p icmp -j DROP
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j LOG --log-prefix "invalid: "
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -i lan0 -p tcp -m tcp --dport 25 -j REJECT --reject-with tcp-reset
-A FORWARD -i lan1 -p udp -m udp --dport 137 -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -i lan0 -j ACCEPT
-A FORWARD -i lan1 -j ACCEPT
-A FORWARD -i wan0 -p udp -m udp --dport 5353 -j ACCEPT
-A FORWARD -i wan0 -p tcp -d {H2} --dport 80 -m conntrack --ctstate DNAT -j ACCEPT
-A FORWARD -p icmp -m limit --limit 100/sec -j LOG --log-prefix "fwd-icmp: "
-A FORWARD -j REJECT --reject-with icmp-host-prohibited
COMMIT
"""

# Drops that happen to a packet already counted forwarded (the neighbour layer).
AFTER_FORWARD = (Drop.NEIGH_QUEUE_FULL, Drop.NEIGH_FAILED)
OUTCOME_DROPS = [r for r in Drop if r not in AFTER_FORWARD]


class AccountingError(AssertionError):
    pass


def make_fuzz_router(seed: int = 0):
    r = make_router()
    r.binder.rng = random.Random(seed)
    r.set_rules(engine_for(RULES))
    return r


class Feeder:
    """Feeds one router, checks the per-packet properties, keeps figures."""

    def __init__(self, router=None, t: float = 1000.0, step: float = 0.003):
        self.r = router if router is not None else make_fuzz_router()
        self.t = t
        self.step = step
        self.packets = 0
        self.held = 0
        self.outcomes: dict[str, int] = {}

    def _state(self):
        c = self.r.counters
        return (c.forwarded, c.local, c.arp, [c.drops[x] for x in OUTCOME_DROPS],
                self.r.defrag.reqds, self.r.defrag.oks)

    def advance(self, dt: float) -> None:
        self.t += dt
        self._tick()

    def _tick(self) -> None:
        r = self.r
        if r.next_deadline() <= self.t:
            self._check_out(r.tick(self.t), "tick")

    def _check_out(self, out, what) -> None:
        n = len(self.r.ports)
        for port, f in out:
            if not (isinstance(port, int) and 0 <= port < n):
                raise AccountingError(f"{what}: output to port {port!r}")
            if len(f) == 0:
                raise AccountingError(f"{what}: empty frame written")
            ip = bytes(f)
            if self.r._tap[port]:
                if ip[12:14] != b"\x08\x00":
                    continue
                ip = ip[14:]
            hl = (ip[0] & 0xF) * 4 if ip else 0
            if len(ip) < 20 or ip[0] >> 4 != 4 or hl < 20 or not csum_ok(ip[:hl]) \
                    or int.from_bytes(ip[2:4], "big") != len(ip):
                raise AccountingError(f"{what}: malformed IPv4 written to port {port}: {ip.hex()}")

    def feed(self, port: int, data: bytes) -> list:
        r = self.r
        c = r.counters
        self.t += self.step
        rx = c.rx_packets[port]
        fwd0, loc0, arp0, drops0, reqds0, oks0 = self._state()
        faults0 = sum(r.guard.faults.values())
        out = r.process(port, memoryview(bytearray(data)), self.t)
        self.packets += 1
        fwd1, loc1, arp1, drops1, reqds1, oks1 = self._state()
        if c.rx_packets[port] != rx + 1:
            raise AccountingError("rx_packets did not move")
        moved = [("forwarded", fwd1 - fwd0), ("local", loc1 - loc0), ("arp", arp1 - arp0)]
        moved += [(x.label, b - a) for x, a, b in zip(OUTCOME_DROPS, drops0, drops1)]
        moved = [(k, v) for k, v in moved if v]
        if len(moved) != 1 or moved[0][1] != 1:
            held = not moved and reqds1 == reqds0 + 1 and oks1 == oks0
            if not held:
                raise AccountingError(f"packet {data.hex()} on port {port}: outcome {moved}")
            self.held += 1
            key = "held"
        else:
            key = moved[0][0]
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        if sum(r.guard.faults.values()) != faults0:
            raise AccountingError(f"a helper faulted on {data.hex()}: {r.notices[-3:]}")
        self._check_out(out, "process")
        self._tick()
        return out

    def check_totals(self) -> None:
        """rx == forwarded + local + arp + outcome drops + fragments held, over the run."""
        c = self.r.counters
        total = c.forwarded + c.local + c.arp + sum(c.drops[x] for x in OUTCOME_DROPS)
        assert sum(c.rx_packets) == total + self.held == self.packets, (
            sum(c.rx_packets), total, self.held, self.packets)


# -- valid flows -----------------------------------------------------------------

def eth(pkt, src=H2_MAC, dst=MAC) -> bytes:
    return raw(Ether(src=src, dst=dst) / pkt)


def _tcp(src, dst, sport, dport, flags, seq, ack, data=b""):
    return raw(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack,
                                           window=8192) / Raw(data))


def tcp_session(cport: int, sport_srv: int, client_lines, server_lines, isn=1000, sisn=5000,
                client=H1, server=SRV, cport_in=LAN_TUN, wan_addr=R_WAN):
    """A client on lan0 talking TCP to server through MASQUERADE: handshake, lines
    each way (server first), FIN.  The server answers the router's address, on the
    client's port (free ports keep their number under masquerade)."""
    c, s = isn + 1, sisn + 1
    out = [(cport_in, _tcp(client, server, cport, sport_srv, "S", isn, 0)),
           (WAN, _tcp(server, wan_addr, sport_srv, cport, "SA", sisn, c)),
           (cport_in, _tcp(client, server, cport, sport_srv, "A", c, s))]
    for i in range(max(len(client_lines), len(server_lines))):
        if i < len(server_lines):
            d = server_lines[i]
            out.append((WAN, _tcp(server, wan_addr, sport_srv, cport, "PA", s, c, d)))
            s += len(d)
        if i < len(client_lines):
            d = client_lines[i]
            out.append((cport_in, _tcp(client, server, cport, sport_srv, "PA", c, s, d)))
            c += len(d)
    out.append((cport_in, _tcp(client, server, cport, sport_srv, "FA", c, s)))
    out.append((WAN, _tcp(server, wan_addr, sport_srv, cport, "FA", s, c + 1)))
    out.append((cport_in, _tcp(client, server, cport, sport_srv, "A", c + 1, s + 1)))
    return out


def ftp_flow(cport=40000, dport=50000):
    h = ",".join(H1.split("."))
    s = ",".join(SRV.split("."))
    port = [
        (WAN, b"220 hi\r\n"), (LAN_TUN, b"USER a\r\n"), (WAN, b"331 pw\r\n"),
        (LAN_TUN, b"PORT %s,%d,%d\r\n" % (h.encode(), dport >> 8, dport & 255)),
        (WAN, b"200 ok\r\n"), (LAN_TUN, b"EPRT |1|%s|%d|\r\n" % (H1.encode(), dport + 1)),
        (WAN, b"200 ok\r\n"), (LAN_TUN, b"PASV\r\n"),
        (WAN, b"227 Entering Passive Mode (%s,%d,%d).\r\n" % (s.encode(), dport >> 8, (dport + 2) & 255)),
        (LAN_TUN, b"EPSV\r\n"), (WAN, b"229 Entering Extended Passive Mode (|||%d|)\r\n" % (dport + 3)),
    ]
    flow = tcp_session(cport, 21, [d for p, d in port if p == LAN_TUN],
                       [d for p, d in port if p == WAN])
    # the active data connection from the server, to the port it was told
    flow.append((WAN, _tcp(SRV, R_WAN, 20, dport, "S", 7000, 0)))
    flow.append((LAN_TUN, _tcp(H1, SRV, dport, 20, "SA", 8000, 7001)))
    # the passive one from the client
    flow.append((LAN_TUN, _tcp(H1, SRV, cport + 1, dport + 2, "S", 9000, 0)))
    return flow


def irc_flow(cport=41000, dport=52000):
    ip = int.from_bytes(bytes(int(x) for x in H1.split(".")), "big")
    flow = tcp_session(cport, 6667, [b"NICK a\r\n", b"PRIVMSG b :\1DCC SEND f %d %d 10\1\r\n" % (ip, dport),
                                     b"PRIVMSG b :\1DCC CHAT chat %d %d\1\r\n" % (ip, dport + 1)],
                       [b":srv 001 a :hi\r\n"])
    flow.append((WAN, _tcp("198.51.100.7", R_WAN, 33000, dport, "S", 100, 0)))
    return flow


def tftp_flow(cport=42000, sport=43000):
    return [(LAN_TUN, raw(IP(src=H1, dst=SRV) / UDP(sport=cport, dport=69) / Raw(b"\0\1file\0octet\0"))),
            (WAN, raw(IP(src=SRV, dst=R_WAN) / UDP(sport=sport, dport=cport) / Raw(b"\0\3\0\1data"))),
            (LAN_TUN, raw(IP(src=H1, dst=SRV) / UDP(sport=cport, dport=sport) / Raw(b"\0\4\0\1")))]


def amanda_flow(cport=850):
    return [(LAN_TUN, raw(IP(src=H1, dst=SRV) / UDP(sport=cport, dport=10080) / Raw(b"REQ\n"))),
            (WAN, raw(IP(src=SRV, dst=R_WAN) / UDP(sport=10080, dport=cport)
                      / Raw(b"Amanda 2.6 REP HANDLE 1 SEQ 1\nCONNECT DATA 50012 MESG 50013 INDEX 50014\n"))),
            (WAN, raw(IP(src=SRV, dst=R_WAN) / TCP(sport=41000, dport=50012, flags="S")))]


def forward_flow(sport=44000):
    """wan0:8080 forwarded to H2:80 on the TAP port: H2 answers ARP, then the handshake."""
    return [(WAN, _tcp(SRV, R_WAN, sport, FWD_PORT, "S", 1, 0)),
            (LAN_TAP, eth(ARP(op=2, hwsrc=H2_MAC, psrc=H2, hwdst=MAC, pdst=R_TAP))),
            (LAN_TAP, eth(IP(src=H2, dst=SRV) / TCP(sport=80, dport=sport, flags="SA", seq=9, ack=2))),
            (WAN, _tcp(SRV, R_WAN, sport, FWD_PORT, "A", 2, 10)),
            (WAN, _tcp(SRV, R_WAN, sport, FWD_PORT, "PA", 2, 10, b"GET / HTTP/1.0\r\n\r\n"))]


def misc_flow(ident=7):
    big = IP(src=H1, dst=SRV, id=ident) / UDP(sport=45000, dport=9999) / Raw(b"z" * 3000)
    echo = IP(src=H1, dst=SRV) / ICMP(id=ident, seq=1) / Raw(b"ping")
    quoted = IP(src=R_WAN, dst=SRV) / ICMP(id=ident, seq=1) / Raw(b"ping")
    flow = [(LAN_TUN, raw(echo)),
            (WAN, raw(IP(src=SRV, dst=R_WAN) / ICMP(type=0, id=ident, seq=1) / Raw(b"ping"))),
            (WAN, raw(IP(src="198.51.100.1", dst=R_WAN) / ICMP(type=3, code=1) / quoted)),
            (LAN_TUN, raw(IP(src=H1, dst=R_LAN) / ICMP(id=ident) / Raw(b"me"))),
            (LAN_TAP, eth(IP(src=H2, dst=R_TAP) / ICMP(id=ident) / Raw(b"me"))),
            (LAN_TAP, eth(ARP(op=1, hwsrc=H2_MAC, psrc=H2, pdst=R_TAP), dst="ff:ff:ff:ff:ff:ff")),
            (LAN_TUN, raw(IP(src=H1, dst=R_LAN) / TCP(sport=5000, dport=22, flags="S"))),
            (LAN_TUN, raw(IP(src=H1, dst=SRV) / TCP(sport=5001, dport=25, flags="S"))),
            (LAN_TAP, eth(IP(src=H2, dst=SRV) / UDP(sport=137, dport=137))),
            (WAN, raw(IP(src=SRV, dst=H1) / UDP(sport=1, dport=5353) / Raw(b"mdns"))),
            (WAN, raw(IP(src=SRV, dst=H1, ttl=1) / UDP(sport=1, dport=5353))),
            (LAN_TUN, raw(IP(src=H1, dst="192.0.2.99") / UDP(sport=1, dport=2)))]
    flow += [(LAN_TUN, raw(f)) for f in fragment(big, fragsize=1000)]
    flow += [(LAN_TAP, eth(f)) for f in fragment(IP(src=H2, dst=R_TAP, id=ident)
                                                   / ICMP() / Raw(b"y" * 2000), fragsize=800)]
    return flow


def corpus(variant: int = 0) -> list[tuple[int, bytes]]:
    """One of each flow; variant shifts ports and identifiers so flows are fresh."""
    v = variant % 2000
    flows = [ftp_flow(40000 + v * 3 % 9000, 50000 + v * 7 % 10000), irc_flow(41000 + v, 52000 + v),
             tftp_flow(42000 + v, 43000 + v), amanda_flow(850 + v % 100), forward_flow(44000 + v),
             misc_flow(v)]
    return [pkt for f in flows for pkt in f]


# -- byte-level mutation ----------------------------------------------------------

# (offset in the IP header, width): version/IHL, TOS, total length, id, flags/frag
# offset, TTL, protocol; then in a TCP/UDP header: ports, seq, data offset, flags.
FIELDS = ((0, 1), (1, 1), (2, 2), (4, 2), (6, 2), (8, 1), (9, 1),
          (20, 2), (22, 2), (24, 4), (28, 4), (32, 1), (33, 1), (24, 2), (26, 2))
SPECIAL = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x3FFF, 0x2000, 0x4000, 0x1FFF, 0x45, 0x4F, 0x46)


def fix_checksums(b: bytearray, l2: int, rng: random.Random) -> None:
    """Make the IP header checksum (and sometimes the L4 one) right again, when readable."""
    if len(b) < l2 + 20:
        return
    hl = (b[l2] & 0xF) * 4
    if hl < 20 or len(b) < l2 + hl:
        return
    b[l2 + 10:l2 + 12] = b"\0\0"
    b[l2 + 10:l2 + 12] = csum(b[l2:l2 + hl]).to_bytes(2, "big")
    proto, frag = b[l2 + 9], int.from_bytes(b[l2 + 6:l2 + 8], "big")
    tot = int.from_bytes(b[l2 + 2:l2 + 4], "big")
    seg = b[l2 + hl:l2 + min(tot, len(b) - l2)] if tot > hl else b""
    if rng.random() < 0.7 and not frag & 0x3FFF:
        off = {6: 16, 17: 6}.get(proto)
        if off is not None and len(seg) >= off + 2:
            seg = bytearray(seg)
            seg[off:off + 2] = b"\0\0"
            c = l4_csum(bytes(b[l2 + 12:l2 + 16]), bytes(b[l2 + 16:l2 + 20]), proto, seg)
            b[l2 + hl + off:l2 + hl + off + 2] = c.to_bytes(2, "big")


def mutate(port: int, data: bytes, rng: random.Random) -> bytes:
    """One to four mutations of a valid frame; checksums repaired most of the time so
    that the mutation gets past the header checksum and reaches deeper code."""
    b = bytearray(data)
    l2 = 14 if port == LAN_TAP else 0
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.3 and b:                                  # bit flips
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
        elif op < 0.45:                                     # truncation
            del b[rng.randrange(len(b) + 1):]
        elif op < 0.55:                                     # extension
            b += rng.randbytes(rng.choice((1, 3, 8, 40, 300)))
        elif op < 0.95:                                     # header field overwrite
            off, width = rng.choice(FIELDS)
            off += l2
            if off + width <= len(b):
                v = rng.choice(SPECIAL) if rng.random() < 0.5 else rng.getrandbits(8 * width)
                b[off:off + width] = (v & ((1 << 8 * width) - 1)).to_bytes(width, "big")
        else:                                               # payload byte overwrite
            if len(b) > l2 + 40:
                i = rng.randrange(l2 + 40, len(b))
                b[i] = rng.choice(b"\r\n ,|0123456789\0\xff")
    if rng.random() < 0.8:
        fix_checksums(b, l2, rng)
    return bytes(b)


def _a(s: str) -> bytes:
    return bytes(int(x) for x in s.split("."))


def random_frame(rng: random.Random) -> tuple[int, bytes]:
    """A frame of random bytes, or a random IPv4 header over random bytes (no Scapy)."""
    port = rng.choice(PORTS)
    n = rng.choice((0, 1, 13, 14, 20, 28, 40, 60, 200))
    body = bytearray(rng.randbytes(n))
    if n >= 20 and rng.random() < 0.8:
        body[0] = 0x45
        body[2:4] = n.to_bytes(2, "big")
        body[6] &= 0x40 if rng.random() < 0.7 else 0xFF
        body[9] = rng.choice((1, 6, 17, 47, body[9]))
        body[12:20] = _a(rng.choice((H1, SRV, H2, R_WAN))) + _a(
            rng.choice((H1, SRV, H2, R_WAN, R_LAN, R_TAP)))
        fix_checksums(body, 0, rng)
    if port == LAN_TAP:
        dst = ROUTER_MAC if rng.random() < 0.8 else rng.randbytes(6)
        etype = rng.choice((b"\x08\x00", b"\x08\x06", b"\x86\xdd", rng.randbytes(2)))
        body = dst + bytes.fromhex("020000000022") + etype + body
    return port, bytes(body)


class Generator:
    """Seeded mix of valid flows, their mutations and random frames (the long run)."""

    def __init__(self, seed: int, variants: int = 8):
        self.rng = random.Random(seed)
        self.variant = 0
        self.pools = [corpus(seed * variants + v) for v in range(variants)]   # Scapy is slow:
        self.pool = self.pools[0]                                            # build once
        self.queue: list[tuple[int, bytes]] = []

    def __iter__(self):
        rng = self.rng
        while True:
            if not self.queue:
                self.variant += 1
                self.pool = self.pools[self.variant % len(self.pools)]
                self.queue = list(self.pool) if rng.random() < 0.3 else []
                self.queue.reverse()
            x = rng.random()
            if self.queue and x < 0.5:
                yield self.queue.pop()
            elif x < 0.9:
                port, data = rng.choice(self.pool)
                yield port, mutate(port, data, rng)
            else:
                yield random_frame(rng)
