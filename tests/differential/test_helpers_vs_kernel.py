"""Conntrack helpers (ftp, irc, tftp, amanda), tunrouter against the kernel.

The same crafted packets cross the kernel router (raw `CT --helper NAME`
rules, `iptables -t raw`/`-t nat` commands) and tunrouter (the same rules as
one iptables-restore file).  Compared per scenario:

* the expectation table (`conntrack -L expect`) where the scenario asks for
  it (Expects steps), the remaining timeout shown as the helper policy's
  timeout it counts down from;
* every packet as it arrived on the far side: addresses, ports, flags,
  seq/ack, payload, and its bytes (checksums included): the rewritten PORT /
  227 / EPRT / DCC / CONNECT text, and the sequence numbers moved after a
  length change (and the ACKs going back moved back);
* whether the expected data connection's first packet is forwarded, and to
  where (NAT following the master).

The kernel run is checked too: which steps arrive and how many expectations
it lists are written in the scenario, so a kernel whose helper modules are
missing is noticed rather than taken as the reference.

Run as root:  .venv/bin/python -m pytest tests/differential/test_helpers_vs_kernel.py
"""
import functools
import re
import shlex
from dataclasses import dataclass, replace

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.packet import Packet, raw
from sender import Hosts
from topology import HOST_DEVICE, KERNEL_RULES, PREFIXLEN, Topology, in_ns, topology

pytestmark = pytest.mark.netns

A1, A2, B1, B2 = "10.71.0.2", "10.71.0.3", "10.72.0.2", "10.72.0.3"
WAN = "10.72.0.1"
LOST = "(nothing arrived)"
MASQ = "-t nat -A POSTROUTING -o b0 -j MASQUERADE"
# helper policy timeouts (s): what `conntrack -L expect`'s first column counts down from
POLICY_TIMEOUTS = {"ftp": 300, "irc": 300, "tftp": 300, "amanda": 180}
SLACK = 5


# -- scenario model ---------------------------------------------------------------

@dataclass(frozen=True)
class Send:
    """side sends src:sport → dst:dport; TCP when flags is not None, else UDP."""
    side: str
    src: str
    dst: str
    sport: int
    dport: int
    flags: str | None = None
    seq: int = 0
    ack: int = 0
    payload: bytes = b""


@dataclass(frozen=True)
class ReplyTo:
    """The host that received step `step` answers it (addresses and ports swapped from
    what arrived).  TCP: flags/seq; ack given, or (ack=None) what arrived acknowledged:
    its seq plus its payload length (plus one for SYN/FIN)."""
    step: int
    flags: str | None = None
    seq: int = 0
    ack: int | None = None
    payload: bytes = b""


@dataclass(frozen=True)
class Expects:
    """Read the expectation table here (no packet)."""


@dataclass(frozen=True)
class ToExpected:
    """send, to the port of the last listed expectation whose master has this source port."""
    master_sport: int
    send: Send


Step = Send | ReplyTo | Expects | ToExpected


@dataclass(frozen=True)
class HelperScenario:
    name: str
    rules: tuple[str, ...]          # `-t TABLE -A CHAIN ...`
    steps: tuple[Step, ...]
    arrives: str                    # per packet step: "y" arrived, "n" lost (the kernel's, checked)
    expects: tuple[int, ...]        # per Expects step: how many expectations the kernel lists
    chosen: int | None = None       # an announced port NAT had to move: the one it moved from
    xfail: str | None = None


def helper_rule(proto: str, port: int, name: str) -> str:
    return f"-t raw -A PREROUTING -p {proto} -m {proto} --dport {port} -j CT --helper {name}"


FTP = helper_rule("tcp", 21, "ftp")
IRC = helper_rule("tcp", 6667, "irc")
TFTP = helper_rule("udp", 69, "tftp")
AMANDA = helper_rule("udp", 10080, "amanda")


def handshake(sport: int, dport: int, cseq: int = 1000, sseq: int = 5000) -> tuple[Step, ...]:
    """A1:sport → B1:dport: SYN, SYN-ACK, ACK (steps 1-3)."""
    return (Send("a", A1, B1, sport, dport, "S", cseq),
            ReplyTo(1, "SA", sseq),
            Send("a", A1, B1, sport, dport, "A", cseq + 1, sseq + 1))


USER = b"USER anonymous\r\n"                       # 16 bytes
# leading zeros parse as the same numbers; the rewritten text has none: 7 bytes shorter
PORT_ZEROS = b"PORT 010,071,000,002,195,080\r\n"      # A1:50000
PORT_MASQ = b"PORT 10,72,0,1,195,80\r\n"
SHRINK = len(PORT_MASQ) - len(PORT_ZEROS)
S1 = 1001 + len(USER)                                # seq of the PORT line
S2 = S1 + len(PORT_ZEROS)                            # seq of the line after it

SCENARIOS: tuple[HelperScenario, ...] = (
    HelperScenario(
        "ftp_port_masquerade",
        (FTP, MASQ),
        (*handshake(40000, 21),
         Send("a", A1, B1, 40000, 21, "PA", 1001, 5001, USER),            # 4
         ReplyTo(4, "A", 5001),                                            # 5
         Send("a", A1, B1, 40000, 21, "PA", S1, 5001, PORT_ZEROS),        # 6: rewritten, shrinks
         ReplyTo(6, "A", 5001),                                            # 7: ack moved back
         ReplyTo(6, "PA", 5001, None, b"200 PORT command successful\r\n"),  # 8
         Send("a", A1, B1, 40000, 21, "PA", S2, 5001 + 29, b"LIST\r\n"),  # 9: seq moved
         ReplyTo(9, "A", 5001 + 29),                                       # 10
         Expects(),
         Send("b", B1, WAN, 20, 50000, "S", 9000),                        # data: to A1:50000
         ReplyTo(12, "SA", 7000)),
        arrives="yyyyyyyyyyyy", expects=(1,),
    ),
    HelperScenario(
        "ftp_port_snat_grows",
        (FTP, "-t nat -A POSTROUTING -o b0 -j SNAT --to-source 10.72.0.10"),
        (*handshake(40000, 21),
         Send("a", A1, B1, 40000, 21, "PA", 1001, 5001, USER),
         ReplyTo(4, "A", 5001),
         Send("a", A1, B1, 40000, 21, "PA", S1, 5001, b"PORT 10,71,0,2,195,80\r\n"),  # +1 byte
         ReplyTo(6, "A", 5001),
         Send("a", A1, B1, 40000, 21, "PA", S1 + 23, 5001, b"LIST\r\n"),
         ReplyTo(8, "A", 5001),
         Expects(),
         Send("b", B1, "10.72.0.10", 20, 50000, "S", 9000)),
        arrives="yyyyyyyyyy", expects=(1,),
    ),
    HelperScenario(
        "ftp_port_taken_moves",
        (FTP, MASQ),
        # A2 announces the port A1's expectation already holds on WAN: NAT takes the next
        (*handshake(40011, 21),
         Send("a", A1, B1, 40011, 21, "PA", 1001, 5001, USER),
         ReplyTo(4, "A", 5001),
         Send("a", A1, B1, 40011, 21, "PA", S1, 5001, b"PORT 10,71,0,2,195,80\r\n"),
         Send("a", A2, B1, 40012, 21, "S", 1000),                          # 7
         ReplyTo(7, "SA", 5000),
         Send("a", A2, B1, 40012, 21, "A", 1001, 5001),
         Send("a", A2, B1, 40012, 21, "PA", 1001, 5001, USER),
         ReplyTo(10, "A", 5001),
         Send("a", A2, B1, 40012, 21, "PA", S1, 5001, b"PORT 10,71,0,3,195,80\r\n"),
         ReplyTo(12, "A", 5001),
         Expects(),
         ToExpected(40012, Send("b", B1, WAN, 20, 0, "S", 9000)),   # to A2:50000
         Send("b", B1, WAN, 20, 50000, "S", 9100)),                 # to A1:50000
        arrives="yyyyyyyyyyyyyyy", expects=(2,), chosen=50000,
    ),
    HelperScenario(
        "ftp_pasv_227_masquerade",
        (FTP, MASQ),
        (*handshake(40001, 21),
         ReplyTo(1, "PA", 5001, 1001, b"220 ready\r\n"),                   # 4
         Send("a", A1, B1, 40001, 21, "PA", 1001, 5012, b"PASV\r\n"),      # 5
         ReplyTo(5, "PA", 5012, None, b"227 Entering Passive Mode (10,72,0,2,195,81).\r\n"),
         ReplyTo(6, "A", 1007),                                            # 7
         Expects(),
         Send("a", A1, B1, 40100, 50001, "S", 3000),                       # data, masqueraded
         ReplyTo(9, "SA", 8000)),
        arrives="yyyyyyyyy", expects=(1,),
    ),
    HelperScenario(
        "ftp_eprt_masquerade",
        (FTP, MASQ),
        (*handshake(40002, 21),
         Send("a", A1, B1, 40002, 21, "PA", 1001, 5001, USER),
         ReplyTo(4, "A", 5001),
         Send("a", A1, B1, 40002, 21, "PA", S1, 5001, b"EPRT |1|10.71.0.2|50002|\r\n"),
         ReplyTo(6, "A", 5001),
         Expects(),
         Send("b", B1, WAN, 20, 50002, "S", 9000)),
        arrives="yyyyyyyy", expects=(1,),
    ),
    HelperScenario(
        "ftp_port_third_party",
        (FTP, MASQ),
        # B2's address, not the client's: NOT RECORDING; the line passes unchanged
        (*handshake(40003, 21),
         Send("a", A1, B1, 40003, 21, "PA", 1001, 5001, USER),
         ReplyTo(4, "A", 5001),
         Send("a", A1, B1, 40003, 21, "PA", S1, 5001, b"PORT 10,72,0,3,195,80\r\n"),
         ReplyTo(6, "A", 5001),
         Expects(),
         Send("b", B1, WAN, 20, 50000, "S", 9000)),
        arrives="yyyyyyyn", expects=(0,),
    ),
    HelperScenario(
        "ftp_port_malformed_dropped",
        (FTP, MASQ),
        # five numbers: a partial match, dropped; the retransmission too
        (*handshake(40004, 21),
         Send("a", A1, B1, 40004, 21, "PA", 1001, 5001, USER),
         ReplyTo(4, "A", 5001),
         Send("a", A1, B1, 40004, 21, "PA", S1, 5001, b"PORT 10,71,0,2,195\r\n"),
         Send("a", A1, B1, 40004, 21, "PA", S1, 5001, b"PORT 10,71,0,2,195\r\n"),
         Send("a", A1, B1, 40004, 21, "PA", S1, 5001, b"PORT 10,71,0,2,195,80\r\n"),
         Expects()),
        arrives="yyyyynny", expects=(1,),
    ),
    HelperScenario(
        "irc_dcc_send_masquerade",
        (IRC, MASQ),
        (*handshake(40005, 6667),
         # 10.71.0.2 = 172425218; under MASQUERADE it becomes 10.72.0.1 = 172490753
         Send("a", A1, B1, 40005, 6667, "PA", 1001, 5001,
              b"PRIVMSG bob :\x01DCC SEND file.txt 172425218 5000 1234\x01\r\n"),
         ReplyTo(4, "A", 5001),
         Expects(),
         Send("b", B1, WAN, 41000, 5000, "S", 9000),
         ReplyTo(7, "SA", 7000)),
        arrives="yyyyyyy", expects=(1,),
    ),
    HelperScenario(
        "ftp_port_retransmitted",
        (FTP, MASQ),
        # the PORT line again, same seq: rewritten again, yet its length change is not
        # counted twice (one correction point per direction)
        (*handshake(40008, 21),
         Send("a", A1, B1, 40008, 21, "PA", 1001, 5001, USER),
         ReplyTo(4, "A", 5001),
         Send("a", A1, B1, 40008, 21, "PA", S1, 5001, PORT_ZEROS),
         Send("a", A1, B1, 40008, 21, "PA", S1, 5001, PORT_ZEROS),
         ReplyTo(7, "A", 5001),
         Send("a", A1, B1, 40008, 21, "PA", S2, 5001, b"LIST\r\n"),
         ReplyTo(9, "A", 5001),
         Expects()),
        arrives="yyyyyyyyyy", expects=(1,),
    ),
    HelperScenario(
        "ftp_epsv_229_masquerade",
        (FTP, MASQ),
        (*handshake(40009, 21),
         ReplyTo(1, "PA", 5001, 1001, b"220 ready\r\n"),
         Send("a", A1, B1, 40009, 21, "PA", 1001, 5012, b"EPSV\r\n"),
         ReplyTo(5, "PA", 5012, None, b"229 Entering Extended Passive Mode (|||50003|)\r\n"),
         ReplyTo(6, "A", 1007),
         Expects(),
         Send("a", A1, B1, 40101, 50003, "S", 3000)),
        arrives="yyyyyyyy", expects=(1,),
    ),
    HelperScenario(
        "irc_dcc_chat_shrinks",
        (IRC, MASQ),
        # a leading zero: the rewritten "%u %u" is one byte shorter; the next segment moves
        (*handshake(40010, 6667),
         Send("a", A1, B1, 40010, 6667, "PA", 1001, 5001,
              b"PRIVMSG bob :\x01DCC CHAT chat 0172425218 5001\x01\r\n"),
         ReplyTo(4, "A", 5001),
         Send("a", A1, B1, 40010, 6667, "PA", 1001 + 46, 5001, b"PRIVMSG bob :hi\r\n"),
         ReplyTo(6, "A", 5001),
         Expects(),
         Send("b", B2, WAN, 41001, 5001, "S", 9000)),
        arrives="yyyyyyyy", expects=(1,),
    ),
    HelperScenario(
        "tftp_rrq_masquerade",
        (TFTP, MASQ),
        (Send("a", A1, B1, 40006, 69, payload=b"\x00\x01boot.img\x00octet\x00"),
         Expects(),
         Send("b", B1, WAN, 40500, 40006, payload=b"\x00\x03\x00\x01data"),  # from a new port
         ReplyTo(3, payload=b"\x00\x04\x00\x01")),
        arrives="yyy", expects=(1,),
    ),
    HelperScenario(
        "amanda_connect_masquerade",
        (AMANDA, MASQ),
        (Send("a", A1, B1, 40007, 10080, payload=b"Amanda 2.4 REQ HANDLE 000-00000000 SEQ 1\n"),
         ReplyTo(1, payload=b"Amanda 2.4 REP HANDLE 000-00000000 SEQ 1\n"
                            b"CONNECT DATA 50010 MESG 50011 INDEX 50012\n"),
         Expects(),
         Send("a", A1, B1, 40100, 50010, "S", 3000),
         Send("a", A1, B1, 40101, 50012, "S", 3000),
         ReplyTo(4, "SA", 8000)),
        arrives="yyyyy", expects=(3,),
    ),
)


# -- the routers ------------------------------------------------------------------

def restore_text(rules) -> str:
    """KERNEL_RULES plus raw and nat tables holding the rules, for tunrouter."""
    tables = {"raw": ("PREROUTING", "OUTPUT"), "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")}
    text = KERNEL_RULES
    for table, chains in tables.items():
        text += f"*{table}\n" + "".join(f":{c} ACCEPT [0:0]\n" for c in chains)
        for r in rules:
            words = shlex.split(r)
            if words[1] == table:
                text += " ".join(words[2:]) + "\n"
        text += "COMMIT\n"
    return text


def load_rules(topo: Topology, kind: str, rules) -> None:
    if kind == "kernel":
        for r in rules:
            in_ns(topo.router.ns, "iptables", *shlex.split(r))
    else:
        path = topo.router.dir / "helpers.rules"
        path.write_text(restore_text(rules))
        topo.router.ctl("iptables-restore", str(path))


def expect_list(topo: Topology, kind: str) -> list[str]:
    if kind == "kernel":
        return in_ns(topo.router.ns, "conntrack", "-L", "expect").stdout.splitlines()
    return topo.router.ctl("conntrack", "-L", "expect").stdout.splitlines()


def normalize_expect(line: str) -> str:
    """The remaining timeout as the helper policy's timeout it started from."""
    secs, rest = line.split(" ", 1)
    helper = re.search(r"helper=(\S+)", rest)
    full = POLICY_TIMEOUTS.get(helper.group(1)) if helper else None
    if full is not None and 0 <= full - int(secs) <= SLACK:
        return f"<{full}s> {rest}"
    return f"<?{secs}s> {rest}"


# -- playing ----------------------------------------------------------------------

def seg_len(ip: Packet) -> int:
    n = len(raw(ip[TCP].payload))
    return n + (1 if ip[TCP].flags & 0x03 else 0)    # SYN, FIN


def expected_port(lines, master_sport: int) -> int:
    for line in lines:
        m = re.search(r" dport=(\d+) mask-src=.* master-src=\S+ master-dst=\S+ sport=(\d+) ", line)
        if m and int(m.group(2)) == master_sport:
            return int(m.group(1))
    raise AssertionError(f"no expectation of the master with sport {master_sport}: {lines}")


def mask_chosen(text: str, announced: int) -> str:
    """A port NAT chose for an expectation instead of `announced` (random since Linux 6.x:
    nf_nat_exp_find_port) as <chosen>, if at least 1024; in PORT text or dport=."""
    def port(p: int, was: str) -> str:
        if p == announced:
            return was
        return "<chosen>" if 1024 <= p <= 65535 else f"<chosen out of range: {p}>"

    text = re.sub(r"(PORT \d+,\d+,\d+,\d+,)(\d+),(\d+)",
                  lambda m: m.group(1) + port(int(m.group(2)) * 256 + int(m.group(3)),
                                              f"{m.group(2)},{m.group(3)}"), text)
    return re.sub(r"^(\S+ proto=\d+ src=\S+ dst=\S+ sport=0 dport=)(\d+)",
                  lambda m: m.group(1) + port(int(m.group(2)), m.group(2)), text)


def build(step, ip_id: int, received: dict) -> tuple[str, Packet]:
    if isinstance(step, Send):
        ip = IP(src=step.src, dst=step.dst, id=ip_id, ttl=64)
        side = step.side
        sport, dport = step.sport, step.dport
        flags, seq, ack, payload = step.flags, step.seq, step.ack, step.payload
    else:
        side, data = received[step.step]
        assert data is not None, f"step {ip_id} answers step {step.step}, which did not arrive"
        rx = IP(data)
        ip = IP(src=rx.dst, dst=rx.src, id=ip_id, ttl=64)
        l4 = rx.getlayer(1)
        sport, dport = l4.dport, l4.sport
        flags, seq, payload = step.flags, step.seq, step.payload
        ack = step.ack if step.ack is not None else (
            (rx[TCP].seq + seg_len(rx)) & 0xFFFFFFFF if TCP in rx else 0)
    if flags is None:
        return side, ip / UDP(sport=sport, dport=dport) / payload
    return side, ip / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack,
                          window=8192) / payload


def _fold(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def l4_checksum(data: bytes) -> tuple[str, bytes]:
    """("ok" | "partial" | "bad", the packet with a correct L4 checksum in place of a partial one).

    The kernel mangles a forwarded payload with checksum offload (CHECKSUM_PARTIAL, as
    veth offers): the field then holds the pseudo-header sum only, and the packet socket
    sees it so.  That is a correct packet on a real wire once the device fills it in.
    """
    hl = (data[0] & 0x0F) * 4
    seg, proto = data[hl:], data[9]
    at = {6: 16, 17: 6}.get(proto)
    if at is None or proto == 17 and seg[6:8] == b"\0\0":
        return "ok", data
    pseudo = data[12:20] + bytes([0, proto]) + len(seg).to_bytes(2, "big")
    if _fold(pseudo + seg) == 0xFFFF:
        return "ok", data
    field = int.from_bytes(seg[at:at + 2], "big")
    if field == _fold(pseudo):
        zeroed = seg[:at] + b"\0\0" + seg[at + 2:]
        full = (~_fold(pseudo + zeroed) & 0xFFFF) or (0xFFFF if proto == 17 else 0)
        return "partial", data[:hl] + zeroed[:at] + full.to_bytes(2, "big") + zeroed[at + 2:]
    return "bad", data


def describe(data: bytes | None) -> str:
    if data is None:
        return LOST
    ip = IP(data)
    l4 = ip.getlayer(1)
    head = f"{ip.src}:{l4.sport} > {ip.dst}:{l4.dport}"
    if TCP in ip:
        return f"tcp {l4.flags} {head} seq={l4.seq} ack={l4.ack} {raw(l4.payload)!r}"
    return f"udp {head} {raw(l4.payload)!r}"


@dataclass(frozen=True)
class Outcome:
    received: tuple[str, ...]        # per packet step: describe()
    wire: tuple[str, ...]            # per packet step: the bytes as they arrived (hex)
    expects: tuple[tuple[str, ...], ...]   # per Expects step: normalized, sorted
    raw_expects: tuple[tuple[str, ...], ...]


def add_addresses(topo: Topology) -> None:
    in_ns(topo.a, "ip", "addr", "add", f"{A2}/{PREFIXLEN}", "dev", HOST_DEVICE)
    in_ns(topo.b, "ip", "addr", "add", f"{B2}/{PREFIXLEN}", "dev", HOST_DEVICE)
    in_ns(topo.b, "ip", "route", "add", "10.72.0.8/29", "via", WAN)


def play(kind: str, scenario: HelperScenario) -> Outcome:
    received, wire, expects, raw_expects = [], [], [], []
    with topology(kind) as topo:
        topo.mute_hosts()
        add_addresses(topo)
        with Hosts(topo.a, topo.b) as hosts:
            hosts.prime()
            load_rules(topo, kind, scenario.rules)
            topo.router.flush()
            got: dict[int, tuple[str, bytes | None]] = {}
            for ip_id, step in enumerate(scenario.steps, start=1):
                if isinstance(step, Expects):
                    lines = expect_list(topo, kind)
                    raw_expects.append(tuple(lines))
                    norm = map(normalize_expect, lines)
                    if scenario.chosen is not None:
                        norm = (mask_chosen(x, scenario.chosen) for x in norm)
                    expects.append(tuple(sorted(norm)))
                    continue
                if isinstance(step, ToExpected):
                    port = expected_port(raw_expects[-1], step.master_sport)
                    step = replace(step.send, dport=port)
                side, pkt = build(step, ip_id, got)
                at = "b" if side == "a" else "a"
                hosts.by_side[side].send(pkt)
                data = hosts.by_side[at].catch(
                    lambda ip, i=ip_id, p=pkt[IP].proto: ip.id == i and ip.proto == p)
                csum = ""
                if data is not None:
                    data = data[:int.from_bytes(data[2:4], "big")]
                    state, data = l4_checksum(data)
                    if state == "bad" or state == "partial" and kind != "kernel":
                        csum = f" {state}-l4-csum"
                got[ip_id] = (at, data)
                text = describe(data) + csum
                if scenario.chosen is not None:
                    masked = mask_chosen(text, scenario.chosen)
                    data = data if masked == text else None     # its bytes hold the chosen port
                    text = masked
                received.append(text)
                wire.append(data.hex() if data else "")
    return Outcome(tuple(received), tuple(wire), tuple(expects), tuple(raw_expects))


@functools.cache
def kernel_outcome(scenario: HelperScenario) -> Outcome:
    return play("kernel", scenario)


def report(scenario: HelperScenario, out: Outcome, other: Outcome | None = None) -> str:
    steps = [s for s in scenario.steps if not isinstance(s, Expects)]
    lines = [f"scenario {scenario.name}"]
    for i, (s, r) in enumerate(zip(steps, out.received), start=1):
        mark = "" if other is None or other.received[i - 1] == r else "  <-- kernel: " + other.received[i - 1]
        lines.append(f"  {i}: {r}{mark}")
    for e in out.raw_expects:
        lines += ["  expect:", *(f"    {x}" for x in e or ["(none)"])]
    return "\n".join(lines)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
@pytest.mark.parametrize("router", ["kernel", "tunrouter"])
def test_helper(router, scenario, request):
    kernel = kernel_outcome(scenario)
    if router == "kernel":
        arrived = "".join("n" if r == LOST else "y" for r in kernel.received)
        assert "out of range" not in str(kernel), report(scenario, kernel)
        assert (arrived, tuple(map(len, kernel.expects))) == (scenario.arrives, scenario.expects), \
            report(scenario, kernel)
        return
    if scenario.xfail:
        request.applymarker(pytest.mark.xfail(reason=scenario.xfail, strict=True))
    got = play("tunrouter", scenario)
    assert got.received == kernel.received, report(scenario, got, kernel)
    assert got.expects == kernel.expects, (
        "expectations differ:\nkernel:\n" + "\n".join(map(str, kernel.expects))
        + "\ntunrouter:\n" + "\n".join(map(str, got.expects)))
    for i, (w, g) in enumerate(zip(kernel.wire, got.wire, strict=True), start=1):
        assert w == g, f"packet {i} arrived with other bytes:\n  kernel:    {w}\n  tunrouter: {g}"
