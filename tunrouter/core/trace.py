"""Packet traces: which hooks, chains and rules a packet went through, and its fate.

The answer to "which rule dropped my packet" (iptables TRACE, `nft monitor
trace`).  A Tracer holds a filter; while one is set the router runs each
packet that matches it through the same path with a trace list attached:
the rule engine appends every rule that matched and every policy applied,
the router the conntrack verdict, and at the end the outcome is read off
what the packet did (the counters that moved, the frames sent) and the NAT
off the difference between the packet as it came and as it left.

Filters come in two spellings:

    tcpdump style:  host 10.1.0.2 and tcp dst port 80
                    src net 10.1.0.0/24 or icmp;  not port 22;  ( ... )
    iptables style: -s 10.1.0.2 -p tcp --dport 80   (anything an iptables rule
                    can match on the packet's headers and ports; conntrack is
                    not known yet when the packet arrives)
"""
import ipaddress
import itertools
import re

from tunrouter.core.desc import PacketDesc
from tunrouter.rules import Ctx, restore
from tunrouter.rules.engine import FILTER, Engine
from tunrouter.rules.model import Hook
from tunrouter.rules.targets import ACCEPT
from tunrouter.wire import ipv4

TRACES_MAX = 1000            # finished traces kept until drained


class FilterError(ValueError):
    pass


# -- tcpdump style --------------------------------------------------------------

_PROTOS = {"tcp": ipv4.PROTO_TCP, "udp": ipv4.PROTO_UDP, "icmp": ipv4.PROTO_ICMP}
_TOKEN = re.compile(r"\(|\)|&&|\|\||!|[^\s()!]+")


def _ports(d: PacketDesc):
    if d.proto in (ipv4.PROTO_TCP, ipv4.PROTO_UDP) and not d.frag & ipv4.OFFSET_MASK \
            and len(d.buf) >= d.hlen + 4:
        b = d.buf
        return (b[d.hlen] << 8 | b[d.hlen + 1], b[d.hlen + 2] << 8 | b[d.hlen + 3])
    return None


class _Parser:
    """expr := and ("or" and)*;  and := unary ("and" unary)*;  unary := "not" unary | prim"""

    def __init__(self, text: str):
        self.toks = _TOKEN.findall(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self):
        tok = self.peek()
        if tok is None:
            raise FilterError("filter ends too early")
        self.i += 1
        return tok

    def parse(self):
        f = self.expr()
        if self.peek() is not None:
            raise FilterError(f"unexpected {self.peek()!r}")
        return f

    def expr(self):
        f = self.conj()
        while self.peek() in ("or", "||"):
            self.take()
            g, h = f, self.conj()
            f = lambda d, g=g, h=h: g(d) or h(d)
        return f

    def conj(self):
        f = self.unary()
        while self.peek() in ("and", "&&"):
            self.take()
            g, h = f, self.unary()
            f = lambda d, g=g, h=h: g(d) and h(d)
        return f

    def unary(self):
        if self.peek() in ("not", "!"):
            self.take()
            g = self.unary()
            return lambda d: not g(d)
        if self.peek() == "(":
            self.take()
            f = self.expr()
            if self.take() != ")":
                raise FilterError("missing )")
            return f
        return self.prim()

    def prim(self):
        tok = self.take()
        if tok in _PROTOS:
            p = _PROTOS[tok]
            if self.peek() in ("src", "dst", "port"):       # "tcp dst port 80"
                inner = self.prim()
                return lambda d: d.proto == p and inner(d)
            return lambda d: d.proto == p
        if tok == "ip" and self.peek() == "proto" or tok == "proto":
            if tok == "ip":
                self.take()
            n = self.take()
            p = _PROTOS.get(n) or _int(n, 255, "protocol")
            return lambda d: d.proto == p
        which = None
        if tok in ("src", "dst"):
            which, tok = tok, self.take()
        if tok in ("host", "net"):
            arg = self.take()
        elif tok in ("port", "portrange"):
            arg = self.take()
            if tok == "port":
                lo = hi = _int(arg, 65535, "port")
            else:
                a, _, b = arg.partition("-")
                lo, hi = _int(a, 65535, "port"), _int(b, 65535, "port")
            idx = {"src": (0,), "dst": (1,), None: (0, 1)}[which]

            def port_test(d, lo=lo, hi=hi, idx=idx):
                p = _ports(d)
                return p is not None and any(lo <= p[i] <= hi for i in idx)
            return port_test
        elif which is not None:                            # "src 10.1.0.2"
            arg = tok
        else:
            raise FilterError(f"unknown filter word {tok!r}")
        try:
            net = ipaddress.ip_network(arg, strict=False)
        except ValueError:
            raise FilterError(f"{arg!r} is not an IPv4 address or network") from None
        if net.version != 4:
            raise FilterError(f"{arg!r} is not IPv4")
        lo, mask = int(net.network_address), int(net.netmask)
        fields = {"src": ("src",), "dst": ("dst",), None: ("src", "dst")}[which]
        return lambda d: any(int.from_bytes(getattr(d, f), "big") & mask == lo for f in fields)


def _int(text: str, top: int, what: str) -> int:
    if not text.isdigit() or int(text) > top:
        raise FilterError(f"{text!r} is not a {what}")
    return int(text)


def compile_filter(text: str, port_names: list[str]):
    """text -> predicate(d: PacketDesc, in_port: int) -> bool; FilterError if it does not parse."""
    text = text.strip()
    if not text:
        return lambda d, port: True
    if text.startswith("-"):
        return _iptables_filter(text, port_names)
    f = _Parser(text).parse()
    return lambda d, port: f(d)


def _iptables_filter(text: str, port_names: list[str]):
    """A one-rule FORWARD chain: the packet matches when that rule does."""
    try:
        engine = Engine(restore(f"*filter\n:FORWARD DROP [0:0]\n-A FORWARD {text} -j ACCEPT\nCOMMIT\n"))
    except ValueError as e:
        raise FilterError(str(e).replace("line 3: ", "")) from None

    def test(d, port):
        ctx = Ctx(d, None, None, port_names[port], "", 0.0)
        return engine.run(FILTER, Hook.FORWARD, ctx) is ACCEPT
    return test


# -- traces ---------------------------------------------------------------------

class Trace:
    """One traced packet.

    packet   its bytes as it arrived (the IPv4 packet)
    events   (table, hook, chain, number, rule or policy) from the engine, and
             ("conntrack", ctstate name) from the router, in order
    outcome  set when it is finished: "forwarded", "local", or the drop reasons
    out      [(port, bytes)] it left as (and what answered it)
    after    the packet after processing, as the router left it in its buffer
             (addresses and ports translated, TTL decremented)
    """
    __slots__ = ("after", "events", "id", "in_port", "now", "out", "outcome", "packet")

    def __init__(self, ident: int, now: float, in_port: int, packet: bytes):
        self.id, self.now, self.in_port, self.packet = ident, now, in_port, packet
        self.events: list[tuple] = []
        self.outcome: list[str] = []
        self.out: list[tuple[int, bytes]] = []
        self.after = packet


class Tracer:
    """The filter and the traces it made, bounded; the driver drains `done`."""

    def __init__(self, match, limit: int = TRACES_MAX):
        self.match = match
        self.limit = limit
        self.done: list[Trace] = []
        self.lost = 0
        self._ids = itertools.count(1)

    def begin(self, d: PacketDesc, in_port: int, now: float) -> Trace | None:
        if not self.match(d, in_port):
            return None
        return Trace(next(self._ids), now, in_port, bytes(d.buf))

    def finish(self, trace: Trace) -> None:
        if len(self.done) >= self.limit:
            self.lost += 1
            return
        self.done.append(trace)
