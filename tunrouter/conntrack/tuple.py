"""Connection tuples and directions (kernel: struct nf_conntrack_tuple, enum ip_conntrack_dir).

A tuple is a plain Python tuple, hashable and cheap to build per packet:

    (src, dst, proto, sport, dport)      src/dst: 4 raw address bytes

What the two port fields hold depends on the protocol, as in the kernel's
`union nf_conntrack_man_proto`:

* TCP, UDP: the ports.
* ICMP: sport is the identifier (kernel: src.u.icmp.id) and dport is
  `type << 8 | code` (kernel: dst.u.icmp.type, dst.u.icmp.code).  So an echo
  request with id 7 is (src, dst, 1, 7, 0x0800) and its reply tuple is
  (dst, src, 1, 7, 0x0000).  Like the kernel, the id is read from bytes 4..6
  of every ICMP message, whatever its type.
* Anything else (generic tracking): both 0.
"""
import enum

from tunrouter.wire import icmp, ipv4

Tuple = tuple[bytes, bytes, int, int, int]


class Dir(enum.IntEnum):
    """Which way a packet travels relative to the first packet of its connection."""
    ORIGINAL = 0
    REPLY = 1


# kernel: nf_conntrack_proto_icmp.c invmap[] (request <-> reply).  Types not
# listed cannot be inverted: no connection can start with them and an ICMP
# error quoting one of them relates to nothing.
ICMP_INVERSE = {
    icmp.ECHO_REQUEST: icmp.ECHO_REPLY,
    icmp.ECHO_REPLY: icmp.ECHO_REQUEST,
    icmp.TIMESTAMP: icmp.TIMESTAMP_REPLY,
    icmp.TIMESTAMP_REPLY: icmp.TIMESTAMP,
    icmp.INFO_REQUEST: icmp.INFO_REPLY,
    icmp.INFO_REPLY: icmp.INFO_REQUEST,
    icmp.ADDRESS: icmp.ADDRESS_REPLY,
    icmp.ADDRESS_REPLY: icmp.ADDRESS,
}


def invert(t: Tuple) -> Tuple | None:
    """The tuple of a packet going the other way (kernel: nf_ct_invert_tuple).

    None for an ICMP tuple whose type has no inverse.
    """
    src, dst, proto, sport, dport = t
    if proto == ipv4.PROTO_ICMP:
        inverse = ICMP_INVERSE.get(dport >> 8)
        if inverse is None:
            return None
        return (dst, src, proto, sport, inverse << 8 | (dport & 0xFF))
    return (dst, src, proto, dport, sport)
