"""Packet builders and a router-shaped driver for the conntrack tests.

Scapy builds every packet (tests are where scapy belongs); the table sees
them as PacketDescs from tunrouter.core.desc.parse, as in the router.

The addresses, ports, initial sequence numbers, windows and SYN options are
those of the kernel runs that produced the expected values in these tests:
a veth + iptables router in network namespaces on the reference machine
(Linux 6.18), the same segments injected on both sides, `conntrack -L` read
in the router's namespace after each scenario.
"""
from scapy.compat import raw
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.packet import Raw

from tunrouter.conntrack.conn import CtInfo
from tunrouter.conntrack.format import list_line
from tunrouter.conntrack.settings import Settings
from tunrouter.conntrack.table import ConnTable
from tunrouter.core.desc import PacketDesc, parse

C, S = "10.0.1.2", "10.0.2.2"        # client (ORIGINAL side) and server
CP, SP = 40000, 80
C_ISN, S_ISN = 1000, 5000
SYN_OPTS = [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]
T0 = 1000.0                          # the tests' clock starts here


def desc(pkt) -> PacketDesc:
    """The PacketDesc the router would hand to conntrack for this scapy packet."""
    d = parse(memoryview(bytearray(raw(pkt))), 0)
    assert isinstance(d, PacketDesc), d
    return d


def tcp_seg(frm: str, flags: str, seq: int, ack: int = 0, data: bytes = b"",
            window: int | None = None, options=None, ports: tuple[int, int] = (CP, SP)):
    """A segment from the client ("C") or the server ("S"); ports are (client, server).

    Windows as in the kernel runs: 64240/65160 on SYNs, 502/509 otherwise;
    SYNs carry SYN_OPTS unless options are given.
    """
    cport, sport_ = ports
    src, dst, sport, dport = (C, S, cport, sport_) if frm == "C" else (S, C, sport_, cport)
    if window is None:
        window = (64240 if frm == "C" else 65160) if "S" in flags else (502 if frm == "C" else 509)
    if options is None:
        options = SYN_OPTS if "S" in flags else []
    return (IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq,
                                      ack=ack if "A" in flags else 0, window=window,
                                      options=options) / Raw(data))


def udp_pkt(frm: str, data: bytes = b"q", sport: int = 40001, dport: int = 53, **kw):
    src, dst, sp, dp = (C, S, sport, dport) if frm == "C" else (S, C, dport, sport)
    return IP(src=src, dst=dst) / UDP(sport=sp, dport=dp, **kw) / Raw(data)


def icmp_pkt(frm: str, icmp_type: int, code: int = 0, ident: int = 7, seq: int = 1, data: bytes = b""):
    src, dst = (C, S) if frm == "C" else (S, C)
    return IP(src=src, dst=dst) / ICMP(type=icmp_type, code=code, id=ident, seq=seq) / Raw(data)


def icmp_error(src: str, dst: str, quoted, icmp_type: int = 3, code: int = 3, **icmp_fields):
    """An ICMP error quoting the IP header and first 8 bytes of quoted (RFC 792)."""
    quote = bytes(raw(quoted))[:28]
    return IP(src=src, dst=dst) / ICMP(type=icmp_type, code=code, **icmp_fields) / Raw(quote)


class Router:
    """Drives a ConnTable as the router will: track, accept everything, confirm NEW.

    now advances only when a step says so; listing() is taken half a second
    after the last packet, as `conntrack -L` ran just after the kernel runs,
    so the timeouts print one second less than their full value.
    """

    def __init__(self, **sysctls):
        self.table = ConnTable(Settings(**sysctls))
        self.now = T0

    def send(self, pkt, after: float = 0.0):
        """Track pkt `after` seconds after the previous one; returns (ct, ctinfo)."""
        self.now += after
        ct, ctinfo = self.table.track(desc(pkt), self.now)
        if ctinfo == CtInfo.NEW:
            assert self.table.confirm(ct, self.now)
        return ct, ctinfo

    def listing(self, after: float = 0.5) -> list[str]:
        when = self.now + after
        return [list_line(ct, when) for ct in self.table.conns(when)]


class Tcp:
    """A client/server TCP conversation that keeps its sequence numbers right.

    c and s are the next sequence number of each side.  Each method sends
    one segment with the current numbers (unless seq/ack are given) and
    advances the sender by its data, SYN and FIN.
    """

    def __init__(self, router: Router, ports: tuple[int, int] = (CP, SP)):
        self.r = router
        self.ports = ports
        self.c = C_ISN
        self.s = S_ISN

    def client(self, flags: str, data: bytes = b"", seq: int | None = None,
               ack: int | None = None, after: float = 0.0, **kw):
        return self._send("C", flags, data, seq, ack, after, kw)

    def server(self, flags: str, data: bytes = b"", seq: int | None = None,
               ack: int | None = None, after: float = 0.0, **kw):
        return self._send("S", flags, data, seq, ack, after, kw)

    def _send(self, frm, flags, data, seq, ack, after, kw):
        mine, theirs = ("c", "s") if frm == "C" else ("s", "c")
        if seq is None:
            seq = getattr(self, mine)
        if ack is None:
            ack = getattr(self, theirs)
        result = self.r.send(tcp_seg(frm, flags, seq, ack, data, ports=self.ports, **kw), after)
        if seq == getattr(self, mine):
            setattr(self, mine, seq + len(data) + ("S" in flags) + ("F" in flags))
        return result

    def to_state(self, state: str):
        """Drive the conversation into a conntrack state (the kernel runs' prefixes)."""
        self.client("S")
        if state == "SYN_SENT":
            return
        if state == "SYN_SENT2":
            self.server("S")                 # the server's own SYN: simultaneous open
            return
        self.server("SA")
        if state == "SYN_RECV":
            return
        self.client("A")
        if state == "ESTABLISHED":
            return
        if state == "CLOSE":
            self.client("R")
            return
        self.client("FA")
        if state == "FIN_WAIT":
            return
        self.server("A")
        if state == "CLOSE_WAIT":
            return
        self.server("FA")
        if state == "LAST_ACK":
            return
        self.client("A")                     # TIME_WAIT
