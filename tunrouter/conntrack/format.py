"""The text of `conntrack -L`, `conntrack -E` and `conntrack -S` (conntrack-tools 1.4.7).

Byte for byte what libnetfilter_conntrack's default output
(src/conntrack/snprintf_default.c) prints for what the kernel sends, checked
against the reference machine:

    tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=33000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=33000 [ASSURED] mark=0 use=1
        [NEW] udp      17 30 src=10.0.1.2 dst=10.0.2.2 sport=40001 dport=5353 [UNREPLIED] src=10.0.2.2 dst=10.0.1.2 sport=5353 dport=40001
    [DESTROY] udp      17 src=10.0.1.2 dst=10.0.2.2 sport=40003 dport=7777 [UNREPLIED] src=10.0.2.2 dst=10.0.1.2 sport=7777 dport=40003
    cpu=0   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 

Every field is printed as "%s " and the final blank removed, except the -S
line, which conntrack prints with its trailing blank.  Timeouts are the
remaining whole seconds, rounded down, as the kernel reports them.
"""
from tunrouter.conntrack.conn import IPS_ASSURED, IPS_SEEN_REPLY, Conn
from tunrouter.conntrack.events import Event, EventType
from tunrouter.conntrack.proto.tcp import TcpState
from tunrouter.conntrack.tuple import Tuple
from tunrouter.wire import ipv4

# libnetfilter_conntrack's protocol names; "unknown" for the rest.
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre", 58: "icmpv6",
               132: "sctp", 136: "udplite"}
# Protocols it prints ports for (ours are 0 for the generically tracked ones).
_PORT_PROTOS = frozenset({6, 17, 33, 132, 136})
_GRE = 47

EVENT_TAGS = {EventType.NEW: "[NEW]", EventType.UPDATE: "[UPDATE]", EventType.DESTROY: "[DESTROY]"}


def tuple_text(t: Tuple) -> str:
    """`src=... dst=...` and the protocol part of one direction."""
    src, dst, proto, sport, dport = t
    text = f"src={ipv4.ntoa(src)} dst={ipv4.ntoa(dst)}"
    if proto in _PORT_PROTOS:
        return f"{text} sport={sport} dport={dport}"
    if proto == ipv4.PROTO_ICMP:
        return f"{text} type={dport >> 8} code={dport & 0xFF} id={sport}"
    if proto == _GRE:
        return f"{text} srckey=0x0 dstkey=0x0"
    return text


def _fields(orig: Tuple, reply: Tuple, status: int, state, timeout: int | None,
            acct=None) -> list[str]:
    proto = orig[2]
    out = [f"{PROTO_NAMES.get(proto, 'unknown'):<8} {proto}"]
    if timeout is not None:
        out.append(str(timeout))
    if state is not None:
        out.append(TcpState(state).name)
    out.append(tuple_text(orig))
    if acct is not None:
        out.append(f"packets={acct[0]} bytes={acct[1]}")
    if not status & IPS_SEEN_REPLY:
        out.append("[UNREPLIED]")
    out.append(tuple_text(reply))
    if acct is not None:
        out.append(f"packets={acct[2]} bytes={acct[3]}")
    if status & IPS_ASSURED:
        out.append("[ASSURED]")
    return out


def list_line(ct: Conn, now: float) -> str:
    """One `conntrack -L` line for ct at time now."""
    remaining = int(ct.deadline - now) if ct.deadline > now else 0
    out = _fields(ct.orig, ct.reply, ct.status, ct.state, remaining, ct.acct)
    out.append(f"mark={ct.mark}")
    helper = ct.helper_name
    if helper is not None:
        out.append(f"helper={helper}")
    out.append("use=1")
    return " ".join(out)


def _exp_tuple(src: str, dst: str, proto: int, sport: int, dport: int, prefix: str = "") -> str:
    text = f"{prefix}src={src} {prefix}dst={dst}"
    return f"{text} sport={sport} dport={dport}" if proto in _PORT_PROTOS else text


def expect_line(exp, now: float) -> str:
    """One `conntrack -L expect` line (libnetfilter_conntrack's expectation output):

    300 proto=6 src=198.51.100.7 dst=203.0.113.1 sport=0 dport=50000 mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 master-src=10.1.0.2 master-dst=198.51.100.7 sport=40000 dport=21 class=0 helper=ftp

    A wildcard source address or port prints as 0 with a zero mask.
    """
    remaining = int(exp.deadline - now) if exp.deadline > now else 0
    m = exp.master.orig
    out = [str(remaining), f"proto={exp.proto}",
           _exp_tuple("0.0.0.0" if exp.src is None else ipv4.ntoa(exp.src), ipv4.ntoa(exp.dst),
                      exp.proto, exp.sport or 0, exp.dport),
           _exp_tuple("0.0.0.0" if exp.src is None else "255.255.255.255", "255.255.255.255",
                      exp.proto, 0 if exp.sport is None else 65535, 65535, "mask-"),
           _exp_tuple(ipv4.ntoa(m[0]), ipv4.ntoa(m[1]), m[2], m[3], m[4], "master-"),
           "class=0"]
    if exp.helper is not None:
        out.append(f"helper={exp.helper.name}")
    return " ".join(out)


def event_line(ev: Event) -> str:
    """One `conntrack -E` line: the tag right-aligned in 9 columns ("%9s ")."""
    out = [f"{EVENT_TAGS[ev.type]:>9}"]
    out += _fields(ev.orig, ev.reply, ev.status, ev.state, ev.timeout)
    if ev.mark:
        out.append(f"mark={ev.mark}")
    if ev.portid:
        out.append(f"[USERSPACE] portid={ev.portid}")
    return " ".join(out)


def stats_line(stats, cpu: int = 0) -> str:
    """One `conntrack -S` line, trailing blank included ("cpu=%-4u\\t" then "%s=%u ")."""
    return f"cpu={cpu:<4}\t" + "".join(f"{name}={value} " for name, value in stats.items())
