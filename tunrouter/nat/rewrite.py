"""Translating packets from their connection's binding (kernel: nf_nat_proto.c).

Pure functions over a writable buffer holding one IPv4 packet.  Checksums
are updated incrementally (RFC 1624): the IPv4 header's for the address, the
TCP or UDP checksum for the address (pseudo-header) and the port, the ICMP
checksum for a query's identifier.  A zero UDP checksum (none sent) stays
zero, and a computed zero is sent as 0xFFFF (CSUM_MANGLED_0).  A quoted
header inside an ICMP error has only the bytes the error carries: its TCP
checksum is updated only when the whole TCP header is quoted, as the kernel
does.
"""
import struct

from tunrouter.conntrack.conn import IPS_DST_NAT, IPS_NAT_MASK, IPS_SRC_NAT, Conn
from tunrouter.nat.range import DST, SRC
from tunrouter.wire import icmp, ipv4
from tunrouter.wire.checksum import csum

_TCP, _UDP, _ICMP = ipv4.PROTO_TCP, ipv4.PROTO_UDP, ipv4.PROTO_ICMP
# ICMP types whose identifier NAT maps (icmp_manip_pkt): the queries and their replies.
_QUERIES = frozenset((icmp.ECHO_REQUEST, icmp.ECHO_REPLY, icmp.TIMESTAMP, icmp.TIMESTAMP_REPLY,
                      icmp.INFO_REQUEST, icmp.INFO_REPLY, icmp.ADDRESS, icmp.ADDRESS_REPLY))

# NAT_BIT[manip][direction]: the status bit that says a packet going that
# direction has its source (SRC) or destination (DST) rewritten: the bit
# of the manip in the ORIGINAL direction, the other one in the REPLY direction.
NAT_BIT = ((IPS_SRC_NAT, IPS_DST_NAT), (IPS_DST_NAT, IPS_SRC_NAT))


_U16 = struct.Struct("!H")
_u16, _p16 = _U16.unpack_from, _U16.pack_into
_u32 = struct.Struct("!I").unpack_from
# Added to a one's-complement sum before folding: a multiple of 0xFFFF (a zero)
# large enough to keep the sum positive whatever the words' difference.
_ZERO = 4 * 0xFFFF


def manip_pkt(buf, off: int, manip: int, addr: bytes, port: int, partial: bool = False) -> bool:
    """Set the source (SRC) or destination (DST) address and port of the packet at buf[off:].

    port is the TCP/UDP port of that end, or the ICMP query identifier; other
    protocols get only the address.  buf may end inside the packet (a quote),
    but not inside the first 8 bytes of a TCP, UDP or ICMP header: then
    nothing is written and False returned, as the kernel's
    skb_ensure_writable(hdroff + 8) fails its manip.
    Each checksum C becomes ~(~C + sum(new words) - sum(old words)) (RFC 1624
    eqn. 3, with the differences of all changed words added at once).
    partial: the TCP/UDP checksum field holds only the pseudo-header sum, not
    inverted (an offloaded checksum): only the address moves it.
    """
    a = off + 12 + 4 * manip
    old_a = _u32(buf, a)[0]
    new_a = int.from_bytes(addr, "big")
    delta = (new_a >> 16) + (new_a & 0xFFFF) - (old_a >> 16) - (old_a & 0xFFFF)
    proto = buf[off + 9]
    l4 = off + ((buf[off] & 0x0F) << 2)
    end = len(buf)
    if l4 + 8 > end and (proto == _TCP or proto == _UDP or proto == _ICMP):
        return False
    if proto == _TCP or proto == _UDP:
        p = l4 + 2 * manip
        if p + 2 <= end:
            old_p = _u16(buf, p)[0]
            _p16(buf, p, port)
            if proto == _TCP:
                c = l4 + 16 if l4 + 20 <= end else 0
            else:
                c = l4 + 6 if partial or _u16(buf, l4 + 6)[0] else 0
            if c and partial:
                _p16(buf, c, _partial(_u16(buf, c)[0], delta))
            elif c:
                s = (~_u16(buf, c)[0] & 0xFFFF) + delta + port - old_p + _ZERO
                s = (s & 0xFFFF) + (s >> 16)
                s = ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF
                _p16(buf, c, s if s or proto == _TCP else 0xFFFF)
    elif proto == _ICMP and l4 + 8 <= end and buf[l4] in _QUERIES:
        old_id = _u16(buf, l4 + 4)[0]
        _p16(buf, l4 + 4, port)
        s = (~_u16(buf, l4 + 2)[0] & 0xFFFF) + port - old_id + _ZERO
        s = (s & 0xFFFF) + (s >> 16)
        _p16(buf, l4 + 2, ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF)
    s = (~_u16(buf, off + 10)[0] & 0xFFFF) + delta + _ZERO
    s = (s & 0xFFFF) + (s >> 16)
    _p16(buf, off + 10, ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF)
    buf[a:a + 4] = addr
    return True


def _partial(field: int, delta: int) -> int:
    """A partial (pseudo-header) checksum after the addresses' words changed by delta:
    inet_proto_csum_replace4(..., pseudohdr=true) on a CHECKSUM_PARTIAL skb."""
    s = field + delta + _ZERO
    s = (s & 0xFFFF) + (s >> 16)
    return (s & 0xFFFF) + (s >> 16)


def make_plans(ct: Conn) -> list:
    """What nat_packet() does to each packet of ct, worked out once: a plan per
    (manip, direction), index manip * 2 + direction, None where nothing changes.

    A plan holds the offsets, the new address and port bytes and the checksum
    deltas, which are the same for every packet of a direction (its tuple
    fixes the old address and port); apply() then only writes.
    """
    plans = [None, None, None, None]
    status = ct.status
    for manip in (SRC, DST):
        for direction in (0, 1):
            if status & NAT_BIT[manip][direction]:
                plans[manip * 2 + direction] = _plan(ct, direction, manip)
    return plans


def _words(a: bytes) -> int:
    n = int.from_bytes(a, "big")
    return (n >> 16) + (n & 0xFFFF)


def _plan(ct: Conn, direction: int, manip: int) -> tuple:
    this, other = (ct.orig, ct.reply) if direction == 0 else (ct.reply, ct.orig)
    proto = this[2]
    if manip == SRC:
        old_addr, new_addr = this[0], other[1]
        old_port, new_port = this[3], (other[3] if proto == _ICMP else other[4])
    else:
        old_addr, new_addr = this[1], other[0]
        old_port, new_port = (this[3], other[3]) if proto == _ICMP else (this[4], other[3])
    ip_delta = _words(new_addr) - _words(old_addr)
    if proto == _TCP or proto == _UDP:
        port_off, check_off = 2 * manip, 16 if proto == _TCP else 6
        l4_delta = ip_delta + new_port - old_port
    elif proto == _ICMP:
        port_off, check_off = 4, 2                 # the query identifier; no pseudo-header
        l4_delta = new_port - old_port
    else:
        port_off = check_off = -1
        l4_delta = 0
    return (12 + 4 * manip, new_addr, port_off, new_port.to_bytes(2, "big"), ip_delta,
            l4_delta, check_off, proto == _UDP)


def apply(buf, plan: tuple, partial: bool = False) -> bytes:
    """Rewrite one packet by its plan (make_plans); returns the address written.

    partial: as for manip_pkt().
    """
    a, addr, port_off, port, ip_delta, l4_delta, check_off, udp = plan
    buf[a:a + 4] = addr
    s = (~_u16(buf, 10)[0] & 0xFFFF) + ip_delta + _ZERO
    s = (s & 0xFFFF) + (s >> 16)
    _p16(buf, 10, ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF)
    if port_off >= 0:
        l4 = (buf[0] & 0x0F) << 2
        buf[l4 + port_off:l4 + port_off + 2] = port
        c = l4 + check_off
        check = _u16(buf, c)[0]
        if partial:
            _p16(buf, c, _partial(check, ip_delta))
        elif check or not udp:                   # a UDP checksum of 0 (none) stays 0
            s = (~check & 0xFFFF) + l4_delta + _ZERO
            s = (s & 0xFFFF) + (s >> 16)
            s = ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF
            _p16(buf, c, s if s or not udp else 0xFFFF)
    return addr


def nat_packet(buf, ct: Conn, direction: int, manip: int, partial: bool = False) -> bytes:
    """Rewrite one packet of ct going `direction` at a hook doing `manip` (nf_nat_manip_pkt).

    The caller has checked ct.status & NAT_BIT[manip][direction].  The
    packet takes the end of the other direction's tuple, inverted: a reply
    to a masqueraded connection gets the inside host back as destination.
    Returns the address written.  partial: as for manip_pkt().
    """
    other = ct.reply if direction == 0 else ct.orig
    if manip == SRC:
        addr = other[1]
        manip_pkt(buf, 0, SRC, addr, other[3] if other[2] == _ICMP else other[4], partial)
    else:
        addr = other[0]
        manip_pkt(buf, 0, DST, addr, other[3], partial)
    return addr


def icmp_reply_translation(buf, hlen: int, ct: Conn, direction: int, manip: int) -> bool:
    """Translate an ICMP error RELATED to ct: the quoted header, then the outer one.

    kernel: nf_nat_icmp_reply_translation().  The quoted packet travelled the
    other way, so it takes the opposite manip, from ct's other tuple as is;
    the ICMP checksum is then computed afresh over the message, and the
    outer address is translated like any packet of the connection (no port).
    Returns False when the packet must be dropped: a redirect about a
    translated connection would teach hosts to bypass the translation, and
    a quote too short to translate (under 8 bytes of TCP/UDP) cannot be.
    """
    if buf[hlen] == icmp.REDIRECT and ct.status & IPS_NAT_MASK:
        return False
    if not ct.status & NAT_BIT[manip][direction]:
        return True
    other = ct.reply if direction == 0 else ct.orig
    inner = hlen + icmp.HLEN
    if manip == SRC:
        if not manip_pkt(buf, inner, DST, other[1], other[3] if other[2] == _ICMP else other[4]):
            return False
    elif not manip_pkt(buf, inner, SRC, other[0], other[3]):
        return False
    buf[hlen + 2:hlen + 4] = b"\0\0"
    buf[hlen + 2:hlen + 4] = csum(buf[hlen:]).to_bytes(2, "big")
    manip_pkt(buf, 0, manip, other[1] if manip == SRC else other[0], 0)
    return True
