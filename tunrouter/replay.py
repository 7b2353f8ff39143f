"""Replaying a capture through the router, offline: the same core, no devices, no root.

The caller reads the capture (the CLI uses Scapy) and hands over Records:
a timestamp and the packet's IPv4 bytes (None for a frame that carries none,
with why).  The topology comes from the capture: the first packet's source
is on lan0, its destination on wan0, and every address seen later goes on
the side facing the host it talks to; a /32 route per address sends each
packet out of the port facing its destination, so both directions forward.
The router's own ports get a pair of /30s in 198.18.0.0/15 (RFC 2544) that
no packet uses.  Transport checksums are not verified (nf_conntrack_checksum=0):
a capture taken where the sender offloads them (any host on an offloading
TUN or TAP port, `tunrouter capture` there) holds packets whose checksum the
device had yet to fill in.

Each packet is processed at its capture timestamp; a Step says what
happened: the conntrack state the router gave it, what it sent, the
expectations created, the drops counted, the notices (a helper's log and
drop lines, faults), and for a payload the router rewrote, a unified diff
of the old and new payload text.  Nothing here prints.
"""
import difflib
from dataclasses import dataclass, field

from tunrouter.conntrack.conn import CTSTATE
from tunrouter.conntrack.format import expect_line
from tunrouter.conntrack.settings import Settings
from tunrouter.core.port import Kind, PortSpec
from tunrouter.core.router import Router, StaticRoute
from tunrouter.core.verdict import Drop
from tunrouter.helpers import HelperSettings
from tunrouter.wire import ipv4

LAN, WAN = 0, 1
PORT_NAMES = ("lan0", "wan0")
_BENCH = int.from_bytes(bytes([198, 18, 0, 0]), "big")


@dataclass(frozen=True)
class Record:
    time: float
    data: bytes | None          # the IPv4 packet, or None
    why: str = ""               # with None: what the frame was instead


@dataclass
class Step:
    index: int                  # 1-based, as Wireshark numbers frames
    time: float
    port: str | None            # the port it came in on (None: skipped)
    ctstate: str | None = None  # NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED; None: not tracked
    sent: list[tuple[str, bytes]] = field(default_factory=list)   # (port name, packet)
    expects: list[str] = field(default_factory=list)              # `conntrack -L expect` lines
    drops: list[str] = field(default_factory=list)                # drop reason labels
    notices: list[str] = field(default_factory=list)
    diff: list[str] = field(default_factory=list)                 # unified diff lines
    skipped: str | None = None


def sides(records: list[Record]) -> dict[bytes, int]:
    """Each address's side (LAN or WAN), from who talks to whom."""
    side: dict[bytes, int] = {}
    for r in records:
        if r.data is None or len(r.data) < 20:
            continue
        src, dst = bytes(r.data[12:16]), bytes(r.data[16:20])
        s, d = side.get(src), side.get(dst)
        if s is None and d is None:
            side[src] = LAN
            side.setdefault(dst, WAN)
        elif s is None:
            side[src] = 1 - d
        elif d is None:
            side[dst] = 1 - s
    return side


def _own_addresses(seen) -> tuple[bytes, bytes]:
    """lan0's and wan0's addresses: two /30s in 198.18.0.0/15 holding no address seen."""
    used = {int.from_bytes(a, "big") for a in seen}
    for base in range(_BENCH, _BENCH + (1 << 17), 8):
        if not any(base <= a < base + 8 for a in used):
            return (base + 1).to_bytes(4, "big"), (base + 5).to_bytes(4, "big")
    raise ValueError("the capture uses all of 198.18.0.0/15: no room for the router's addresses")


def build(records: list[Record], helpers: dict | None = None,
          helper_settings: HelperSettings | None = None,
          addresses: tuple[bytes, bytes] | None = None) -> tuple[Router, dict[bytes, int]]:
    """A two-port TUN router whose routes fit the capture's conversations.

    addresses: lan0's and wan0's own addresses (each in a /30), e.g. wan0's the
    address a capture's replies to a masqueraded connection go to; default:
    free ones."""
    side = sides(records)
    lan, wan = addresses or _own_addresses(side)
    ports = [PortSpec(LAN, PORT_NAMES[LAN], Kind.TUN, lan, 30),
             PortSpec(WAN, PORT_NAMES[WAN], Kind.TUN, wan, 30)]
    router = Router(ports, conntrack=Settings(nf_conntrack_checksum=0), helpers=helpers,
                    helper_settings=helper_settings)
    for addr, port in side.items():
        if addr[0] in (0, 127) or addr[0] >= 224 or addr in (lan, wan):
            continue                           # no route to a martian or a multicast group
        try:
            router.add_route(StaticRoute(addr, 32, None, port))
        except ValueError:
            continue
    return router, side


def _payload(pkt: bytes) -> bytes | None:
    """The TCP or UDP payload of an unfragmented IPv4 packet, else None."""
    if len(pkt) < 20:
        return None
    hl = (pkt[0] & 15) * 4
    proto = pkt[9]
    if int.from_bytes(pkt[6:8], "big") & 0x3FFF:          # a fragment
        return None
    total = min(len(pkt), int.from_bytes(pkt[2:4], "big") or len(pkt))
    if proto == ipv4.PROTO_TCP and total >= hl + 20:
        return pkt[hl + ((pkt[hl + 12] >> 4) << 2):total]
    if proto == ipv4.PROTO_UDP and total >= hl + 8:
        return pkt[hl + 8:total]
    return None


def payload_diff(old: bytes, new: bytes, index: int) -> list[str]:
    """A unified diff of two payloads as text (Latin-1: every byte shows)."""
    a = old.decode("latin-1").splitlines(keepends=True)
    b = new.decode("latin-1").splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, f"packet {index} received", f"packet {index} sent", lineterm="")
    return [line.rstrip("\r\n") for line in lines]


class Replay:
    """Feed records one by one (step()) or all at once (run()) to a router built for them."""

    def __init__(self, records: list[Record], helpers: dict | None = None,
                 helper_settings: HelperSettings | None = None, rules=None,
                 addresses: tuple[bytes, bytes] | None = None):
        self.records = records
        self.router, self.side = build(records, helpers, helper_settings, addresses)
        if rules is not None:
            self.router.set_rules(rules)
        self._ctinfo = None
        table = self.router.conntrack
        # the state the router gave the packet: what conntrack answered first
        track, icmp_error = table.track, table.icmp_error

        def tracked(d, now):
            res = track(d, now)
            if self._ctinfo is None:
                self._ctinfo = res[1]
            return res

        def icmp_tracked(d, now):
            res = icmp_error(d, now)
            if self._ctinfo is None:
                self._ctinfo = res[1]
            return res
        table.track, table.icmp_error = tracked, icmp_tracked

    def run(self) -> list[Step]:
        return [self.step(i) for i in range(len(self.records))]

    def step(self, i: int) -> Step:
        r = self.records[i]
        router = self.router
        if r.data is None:
            return Step(i + 1, r.time, None, skipped=r.why or "not IPv4")
        if len(r.data) < 20:
            return Step(i + 1, r.time, None, skipped="truncated IPv4 header")
        port = self.side[bytes(r.data[12:16])]
        drops = list(router.counters.drops)
        before = {id(e) for e in router.conntrack.expects.all(r.time)}
        notices_at = len(router.notices)
        self._ctinfo = None
        out = router.process(port, memoryview(bytearray(r.data)), r.time)
        step = Step(i + 1, r.time, PORT_NAMES[port])
        step.ctstate = CTSTATE.get(self._ctinfo) if self._ctinfo is not None else None
        step.sent = [(PORT_NAMES[p], bytes(f)) for p, f in out]
        step.expects = [expect_line(e, r.time) for e in router.conntrack.expects.all(r.time)
                        if id(e) not in before]
        step.drops = [Drop(k).label for k, (a, b) in enumerate(zip(drops, router.counters.drops))
                      if b > a]
        step.notices = router.notices[notices_at:]
        del router.notices[notices_at:]
        old = _payload(bytes(r.data))
        for _, pkt in step.sent:
            new = _payload(pkt)
            if old is not None and new is not None and new != old and pkt[9] == r.data[9]:
                step.diff = payload_diff(old, new, i + 1)
                break
        return step


def load_helper_file(path) -> list:
    """The Helper subclasses a Python file defines (a prototype, not installed), loaded
    with importlib under a module name of its own.  ValueError when there is none."""
    import importlib.util
    import sys
    from pathlib import Path

    from tunrouter.helpers.base import Helper

    path = Path(path)
    modname = "tunrouter_replay_" + "".join(c if c.isalnum() else "_" for c in path.stem)
    if path.name == "__init__.py":
        modname = "tunrouter_replay_" + path.parent.name.replace("-", "_")
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[modname]
        raise ValueError(f"{path}: cannot load: {type(e).__name__}: {e}") from e
    found = [v for v in vars(module).values()
             if isinstance(v, type) and issubclass(v, Helper) and v is not Helper
             and v.__module__ == modname]
    if not found:
        raise ValueError(f"{path}: defines no Helper subclass")
    for cls in found:
        if not cls.name:
            raise ValueError(f"{path}: {cls.__name__} has no name")
    return found
