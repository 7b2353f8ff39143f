"""Same flows through Linux NAT and through tunrouter's: the same tables, the same packets delivered.

Each scenario (nat_scenarios.py) is played on a fresh topology (topology.py):
the hosts are muted and get their second addresses, a probe proves the path
both ways, the nat rules are loaded (the kernel: one `iptables -t nat` per
rule; tunrouter: the same rules as an iptables-restore file), the table is
flushed, the steps are sent, and both the conntrack table and every packet
that arrived are kept.

A source port or ICMP id the NAT chose becomes REMAPPED when it lies in the
range it had to be chosen from: in the table where the reply's port differs
from the original's, in an arrived packet where it differs from what was sent
(and the table shows it chosen, or the scenario never names it).  A router
that remapped where the other kept the port, or strayed out of the range,
shows the number instead, so the two still differ.

* router=kernel: the live table and packets must equal the recording.
* router=tunrouter: both routers' nat tables must save the same, then its
  table, packets and the received bytes (checksums included; only the IP id of
  a packet the router made itself may differ) must equal the live kernel's,
  then the recording.

Run as root:  .venv/bin/python -m pytest tests/differential/test_nat_vs_kernel.py
"""
import functools
import re
from dataclasses import dataclass, replace

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror
from scapy.packet import Packet, raw

from nat_scenarios import (A1, B1, NAT_SCENARIOS, REMAPPED, SECOND_ADDRESSES, SNAT_POOL, WAN,
                           Datagram, Echo, ErrorAbout, NatScenario, Segment, Send)
from normalize import Conn, normalize, side_by_side, text_shape
from sender import Hosts
from topology import (HOST_DEVICE, PREFIXLEN, Topology, in_ns, rule_lines, topology)

pytestmark = pytest.mark.netns

LOST = "(nothing arrived)"
ICMP_ERRORS = (3, 4, 5, 11, 12)
ECHO_TYPES = (0, 8)


@dataclass(frozen=True)
class NatOutcome:
    """What one router made of a scenario."""
    table: tuple[Conn, ...]          # normalized, chosen ports as REMAPPED
    received: tuple[str, ...]        # per step: describe() of what arrived, or LOST
    wire: tuple[str, ...]            # per step: the bytes that arrived, hex ("" when REMAPPED or LOST)
    rules: tuple[str, ...] = ()      # the nat table as the router saves it, without counters
    lines: tuple[str, ...] = ()      # its conntrack -L text


# -- checksums and descriptions ------------------------------------------------

def _fold(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def checksum_faults(b: bytes, prefix: str = "") -> list[str]:
    """Which checksums of the IPv4 packet b are wrong; a quote cut short is not judged past its end."""
    hl = (b[0] & 0x0F) * 4
    faults = [] if _fold(b[:hl]) == 0xFFFF else [f"{prefix}bad-ip-csum"]
    total = int.from_bytes(b[2:4], "big")
    if len(b) < total:
        return faults
    seg, proto = b[hl:total], b[9]
    if proto in (6, 17):
        if proto == 17 and seg[6:8] == b"\0\0":
            return faults
        pseudo = b[12:20] + bytes([0, proto]) + len(seg).to_bytes(2, "big")
        ok = _fold(pseudo + seg) == 0xFFFF
    elif proto == 1:
        ok = _fold(seg) == 0xFFFF
    else:
        return faults
    return faults if ok else [*faults, f"{prefix}bad-l4-csum"]


def allowed_range(original: int, proto: str, remap_range: tuple[int, int] | None) -> tuple[int, int]:
    """Where a port chosen for `original` may lie (nf_nat_l4proto_unique_tuple)."""
    if remap_range is not None:
        return remap_range
    if proto == "icmp":
        return 0, 65535
    if original < 512:
        return 1, 511
    if original < 1024:
        return 600, 1023
    return 1024, 65535


def chosen(value: int, original: int, proto: str, remap_range) -> str:
    lo, hi = allowed_range(original, proto, remap_range)
    return REMAPPED if lo <= value <= hi else f"<remapped out of {lo}-{hi}: {value}>"


def describe(ip: Packet, sent: Packet | None = None, chosen_here: frozenset[int] = frozenset(),
             known: frozenset[int] = frozenset(), remap_range=None) -> str:
    """One arrived packet (or a quoted one) in a line.

    With `sent`, what left the other host: a port or ICMP id that is not what
    was sent, and is one the router's table shows it chose (`chosen_here`) or
    none of the scenario's own numbers (`known`), is shown as REMAPPED.
    """
    def number(got: int, was: int, proto: str) -> str:
        if sent is None or got == was or got in known and got not in chosen_here:
            return str(got)
        return chosen(got, was, proto, remap_range)

    l4 = ip.getlayer(1)
    if ip.proto in (6, 17):
        name = "tcp" if ip.proto == 6 else "udp"
        out = sent.getlayer(1) if sent is not None else l4
        flags = f" {l4.flags}" if ip.proto == 6 else ""
        return (f"{name}{flags} {ip.src}:{number(l4.sport, out.sport, name)}"
                f" > {ip.dst}:{number(l4.dport, out.dport, name)}")
    if ip.proto == 1:
        head = f"icmp {l4.type}/{l4.code} {ip.src} > {ip.dst}"
        if l4.type in ECHO_TYPES:
            was = sent[ICMP].id if sent is not None else l4.id
            return f"{head} id={number(l4.id, was, 'icmp')}"
        if IPerror in ip:
            return f"{head} [{describe(ip[IPerror])}]"
        return head
    return f"proto {ip.proto} {ip.src} > {ip.dst}"


def known_numbers(scenario: NatScenario) -> frozenset[int]:
    """The ports and ids a scenario names itself: its Send steps', and the single ports of its rules."""
    numbers = set()
    for step in scenario.steps:
        if isinstance(step, Send):
            numbers.update(v for k, v in vars(step.l4).items() if k in ("sport", "dport", "id"))
    for rule in scenario.rules:
        numbers.update(int(n) for n in re.findall(r"(?:--dport |--to-ports |:)(\d+)(?![-\d])", rule))
    return frozenset(numbers)


def arrival(data: bytes | None, sent: Packet, answered: bool, chosen_here: frozenset[int],
            known: frozenset[int], remap_range) -> tuple[str, str]:
    """(describe() with checksum faults, the bytes to compare) for what arrived."""
    if data is None:
        return LOST, ""
    data = data[:int.from_bytes(data[2:4], "big")]        # no link-layer padding
    ip = IP(data)
    faults = checksum_faults(data)
    if IPerror in ip:
        quoted = raw(ip[IPerror])
        faults += checksum_faults(quoted, "quoted-")
    # a packet the router made answers `sent`: nothing in it was translated from it
    text = " ".join([describe(ip, None if answered else sent, chosen_here, known, remap_range),
                     *faults])
    if REMAPPED in text:
        return text, ""
    if answered:
        # a packet the router made: its IP id is its own business (so then the header checksum)
        data = data[:4] + b"\0\0" + data[6:10] + b"\0\0" + data[12:]
    return text, data.hex()


# -- conntrack entries ---------------------------------------------------------

def _fields(t: str) -> dict[str, str]:
    return dict(w.split("=", 1) for w in t.split())


def _join(fields: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in fields.items())


def mask_chosen(c: Conn, remap_range) -> Conn:
    """The entry with a source port or ICMP id the NAT chose as REMAPPED (when in range)."""
    orig, reply = _fields(c.orig), _fields(c.reply)
    name = c.proto.split("/")[0]
    if name in ("tcp", "udp") and reply["dport"] != orig["sport"]:
        reply["dport"] = chosen(int(reply["dport"]), int(orig["sport"]), name, remap_range)
    elif name == "icmp" and reply["id"] != orig["id"]:
        reply["id"] = chosen(int(reply["id"]), int(orig["id"]), name, remap_range)
    else:
        return c
    return replace(c, reply=_join(reply))


# -- playing a scenario --------------------------------------------------------

def build(step, ip_id: int, received: dict[int, tuple[str, bytes | None]]) -> tuple[str, Packet]:
    """The step's sender side and packet."""
    if isinstance(step, Send):
        ip = IP(src=step.src, dst=step.dst, id=ip_id, ttl=64)
        match step.l4:
            case Datagram(sport, dport, payload):
                return step.side, ip / UDP(sport=sport, dport=dport) / (b"u" * payload)
            case Segment(sport, dport, flags, seq, ack, payload):
                return step.side, ip / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack,
                                           window=8192) / (b"d" * payload)
            case Echo(ident, seq):
                return step.side, ip / ICMP(type=8, id=ident, seq=seq) / b"echo-data"
    side, data = received[step.step]
    assert data is not None, f"step {ip_id} answers step {step.step}, which did not arrive"
    rx = IP(data[:int.from_bytes(data[2:4], "big")])
    ip = IP(src=rx.dst, dst=rx.src, id=ip_id, ttl=64)
    if isinstance(step, ErrorAbout):
        return side, ip / ICMP(type=step.type, code=step.code) / raw(rx)
    if TCP in rx:
        return side, ip / TCP(sport=rx[TCP].dport, dport=rx[TCP].sport, flags=step.flags, seq=step.seq,
                              ack=step.ack, window=8192) / (b"d" * (step.payload or 0))
    if UDP in rx:
        payload = 16 if step.payload is None else step.payload
        return side, ip / UDP(sport=rx[UDP].dport, dport=rx[UDP].sport) / (b"u" * payload)
    if ICMP in rx and rx[ICMP].type == 8:
        return side, ip / ICMP(type=0, id=rx[ICMP].id, seq=rx[ICMP].seq) / raw(rx[ICMP].payload)
    raise TypeError(f"cannot reply to {rx.summary()}")


def play_steps(hosts: Hosts, scenario: NatScenario) -> list[tuple[Packet, bytes | None, bool]]:
    """Send the steps in order; per step, what was sent, what arrived (None: nothing), answered."""
    received: dict[int, tuple[str, bytes | None]] = {}
    arrivals = []
    for ip_id, step in enumerate(scenario.steps, start=1):
        side, pkt = build(step, ip_id, received)
        answered = isinstance(step, Send) and step.answered
        if answered:
            at = side

            def wanted(ip, i=ip_id, sport=pkt.getlayer(1).sport if TCP in pkt else -1):
                if TCP in ip:           # a reset, to the port the segment came from
                    return "R" in ip[TCP].flags and ip[TCP].dport == sport
                return (ICMP in ip and ip[ICMP].type in ICMP_ERRORS and IPerror in ip
                        and ip[IPerror].id == i)
        else:
            at = "b" if side == "a" else "a"

            def wanted(ip, i=ip_id, proto=pkt[IP].proto):
                return ip.id == i and ip.proto == proto
        hosts.by_side[side].send(pkt)
        data = hosts.by_side[at].catch(wanted)
        received[ip_id] = (at, data)
        arrivals.append((pkt, data, answered))
    return arrivals


def chosen_numbers(table: list[Conn]) -> frozenset[int]:
    """The source ports and ICMP ids a router's table shows it chose (reply ≠ original)."""
    numbers = set()
    for c in table:
        orig, reply = _fields(c.orig), _fields(c.reply)
        key = ("id", "id") if "id" in orig else ("sport", "dport")
        if key[1] in reply and reply[key[1]] != orig[key[0]]:
            numbers.add(int(reply[key[1]]))
    return frozenset(numbers)


def add_second_addresses(topo: Topology) -> None:
    for side, ns in (("a", topo.a), ("b", topo.b)):
        in_ns(ns, "ip", "addr", "add", f"{SECOND_ADDRESSES[side]}/{PREFIXLEN}", "dev", HOST_DEVICE)
    in_ns(topo.b, "ip", "route", "add", SNAT_POOL, "via", WAN)


def play(kind: str, scenario: NatScenario) -> NatOutcome:
    with topology(kind) as topo:
        topo.mute_hosts()
        add_second_addresses(topo)
        with Hosts(topo.a, topo.b) as hosts:
            hosts.prime()
            topo.router.load_nat(scenario.rules)
            rules = tuple(rule_lines(topo.router.save_nat()))
            topo.router.flush()        # the probes were tracked too
            arrivals = play_steps(hosts, scenario)
            lines = topo.router.conntrack_list()
    entries = normalize(lines)
    here, known = chosen_numbers(entries), known_numbers(scenario)
    received, wire = zip(*(arrival(data, sent, answered, here, known, scenario.remap_range)
                           for sent, data, answered in arrivals), strict=True)
    table = tuple(sorted((mask_chosen(c, scenario.remap_range) for c in entries), key=str))
    return NatOutcome(table, received, wire, rules, tuple(lines))


@functools.cache
def kernel_outcome(scenario: NatScenario) -> NatOutcome:
    """The live kernel's result, played once per run and shared by both variants."""
    return play("kernel", scenario)


def recorded(scenario: NatScenario) -> NatOutcome:
    return NatOutcome(tuple(sorted(scenario.kernel, key=str)), scenario.received, ())


def differences(scenario: NatScenario, want_title: str, want: NatOutcome, got_title: str,
                got: NatOutcome) -> str:
    steps = [f"  step {i}: {step}\n    {want_title}: {w}\n    {got_title}: {g}"
             for i, (step, w, g) in enumerate(zip(scenario.steps, want.received, got.received,
                                                  strict=True), start=1) if w != g]
    return "\n".join([
        f"scenario {scenario.name}: {got_title} differs from {want_title}",
        side_by_side(want_title, list(want.table), got_title, list(got.table)),
        *(["arrivals differ:", *steps] if steps else []),
        f"{got_title} printed:", *(f"  {line}" for line in got.lines or ["(no entries)"]),
    ])


def assert_same(scenario, want_title, want: NatOutcome, got_title, got: NatOutcome) -> None:
    assert (got.table, got.received) == (want.table, want.received), \
        differences(scenario, want_title, want, got_title, got)


@pytest.mark.parametrize("scenario", NAT_SCENARIOS, ids=lambda s: s.name)
@pytest.mark.parametrize("router", ["kernel", "tunrouter"])
def test_nat(router, scenario, request):
    kernel = kernel_outcome(scenario)
    if router == "kernel":
        assert_same(scenario, "recorded (Linux 6.18)", recorded(scenario), "kernel", kernel)
        return
    if scenario.xfail:
        request.applymarker(pytest.mark.xfail(reason=scenario.xfail, strict=True))
    got = play("tunrouter", scenario)
    assert got.rules == kernel.rules, "the two nat tables differ:\nkernel:\n" + "\n".join(
        kernel.rules) + "\ntunrouter:\n" + "\n".join(got.rules)
    assert_same(scenario, "kernel", kernel, "tunrouter", got)
    for i, (step, w, g) in enumerate(zip(scenario.steps, kernel.wire, got.wire, strict=True), start=1):
        assert w == g, (f"step {i} ({step}) arrived with other bytes:\n"
                        f"  kernel:    {w}\n  tunrouter: {g}")
    assert_same(scenario, "recorded (Linux 6.18)", recorded(scenario), "tunrouter", got)
    if REMAPPED not in "".join(map(str, kernel.table)):
        want_text, got_text = sorted(map(text_shape, kernel.lines)), sorted(map(text_shape, got.lines))
        assert got_text == want_text, ("same entries, different text:\nkernel:\n" + "\n".join(want_text)
                                       + "\ntunrouter:\n" + "\n".join(got_text))


def test_scenarios_use_their_addresses():
    """The scenarios' inside and outside addresses are the topology's."""
    from topology import A_ADDR, B_ADDR, B_GW
    assert (A1, B1, WAN) == (A_ADDR, B_ADDR, B_GW)
