"""ICMP tracking (kernel: net/netfilter/nf_conntrack_proto_icmp.c).

Queries: echo, timestamp, information and address-mask requests start a
connection whose reply tuple holds the matching reply type (tuple.py
ICMP_INVERSE).  Every packet refreshes it to nf_conntrack_icmp_timeout (30 s).
The entry is not deleted when the reply passes: the reference kernel keeps
it "to handle correctly ICMP echo reply duplicates" (the iptables tutorial's
"destroyed once the reply is seen" is older behaviour).  Successive pings
with the same id reuse one entry: the sequence number is not in the tuple.
ICMP entries never become ASSURED.

Errors (destination unreachable, source quench, redirect, time exceeded,
parameter problem) never create or refresh an entry: they are RELATED to the
connection whose packet they quote, or INVALID (table.py ConnTable.icmp_error,
kernel nf_conntrack_inet_error).  inner_tuple() below reads the quote.
"""
import struct

from tunrouter.conntrack.conn import Conn
from tunrouter.conntrack.tuple import Tuple
from tunrouter.wire import icmp, ipv4

# kernel: valid_new[] in nf_conntrack_icmp_packet
VALID_NEW = frozenset({icmp.ECHO_REQUEST, icmp.TIMESTAMP, icmp.INFO_REQUEST, icmp.ADDRESS})

_INNER_IP = struct.Struct("!BxxxxxHxBxx4s4s").unpack_from   # ver_ihl, frag, proto, src, dst
_PORTS = struct.Struct("!HH").unpack_from
_ICMP_ID = struct.Struct("!BBxxH").unpack_from               # type, code, id


def new(orig: Tuple, reply: Tuple | None) -> Conn | str:
    """The entry for a query, or why this message cannot start one.

    reply is None when the type has no inverse (kernel: init_conntrack fails
    in nf_ct_invert_tuple).
    """
    icmp_type = orig[4] >> 8
    if reply is None or icmp_type not in VALID_NEW:
        return f"icmp: can't create new conn with type {icmp_type}"
    return Conn(orig, reply)


def packet(ct: Conn, now: float, s) -> None:
    """kernel: nf_conntrack_icmp_packet: every packet refreshes the entry."""
    ct.deadline = now + s.icmp_timeout


def inner_tuple(buf: memoryview, off: int) -> Tuple | None:
    """The tuple of the packet an ICMP error quotes (kernel: nf_ct_get_tuplepr).

    off is where the quoted IPv4 header starts (outer L4 offset + 8).  Like
    the kernel's ipv4_get_l4proto() and nf_ct_get_tuple(): None
    when the quoted header is short or is a non-first fragment, or its L4
    part is too short for the ports (4 bytes) or the ICMP id (8 bytes).
    Unlike the kernel we also refuse a quoted IHL below 5, which the kernel
    would read as pointing inside the quoted IP header.
    """
    n = len(buf)
    if n - off < ipv4.MIN_HLEN:
        return None
    ver_ihl, frag, proto, src, dst = _INNER_IP(buf, off)
    if frag & ipv4.OFFSET_MASK:
        return None                      # conntrack only tracks first fragments in quotes
    ihl = (ver_ihl & 0x0F) << 2
    l4 = off + ihl
    if ihl < ipv4.MIN_HLEN or l4 > n:
        return None
    if proto == ipv4.PROTO_TCP or proto == ipv4.PROTO_UDP:
        if n - l4 < 4:
            return None
        sport, dport = _PORTS(buf, l4)
        return (src, dst, proto, sport, dport)
    if proto == ipv4.PROTO_ICMP:
        if n - l4 < icmp.HLEN:
            return None
        icmp_type, code, ident = _ICMP_ID(buf, l4)
        return (src, dst, proto, ident, icmp_type << 8 | code)
    return (src, dst, proto, 0, 0)
