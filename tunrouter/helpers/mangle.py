"""Rewriting a payload (kernel: nf_nat_helper.c, __nf_nat_mangle_tcp_packet and the UDP one).

The announced address and port are replaced by the translated ones; the
packet grows or shrinks with the text, so the IPv4 total length and header
checksum are rewritten and the TCP or UDP checksum computed afresh (a UDP
checksum of zero, none sent, stays zero).  The caller records a TCP length
change for sequence adjustment.
"""
from tunrouter.wire import ipv4
from tunrouter.wire.checksum import csum
from tunrouter.wire.l4 import l4_csum

MAX_LEN = 65535


def mangle(buf, hlen: int, start: int, end: int, text: bytes) -> bytearray | None:
    """A new packet: buf with payload bytes [start, end) replaced by text; None if too long."""
    proto = buf[9]
    if proto == ipv4.PROTO_TCP:
        data = hlen + ((buf[hlen + 12] >> 4) << 2)
    else:
        data = hlen + 8
    new = bytearray(buf[:data + start])
    new += text
    new += buf[data + end:]
    if len(new) > MAX_LEN:
        return None
    new[2:4] = len(new).to_bytes(2, "big")
    new[10:12] = b"\0\0"
    new[10:12] = csum(new[:hlen]).to_bytes(2, "big")
    src, dst = bytes(new[12:16]), bytes(new[16:20])
    if proto == ipv4.PROTO_TCP:
        new[hlen + 16:hlen + 18] = b"\0\0"
        new[hlen + 16:hlen + 18] = l4_csum(src, dst, proto, new[hlen:]).to_bytes(2, "big")
    else:
        new[hlen + 4:hlen + 6] = (len(new) - hlen).to_bytes(2, "big")
        if new[hlen + 6] or new[hlen + 7]:
            new[hlen + 6:hlen + 8] = b"\0\0"
            check = l4_csum(src, dst, proto, new[hlen:])
            new[hlen + 6:hlen + 8] = (check or 0xFFFF).to_bytes(2, "big")
    return new
