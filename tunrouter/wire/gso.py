"""Doing in software what an offloading device would: checksums and segmentation.

A packet read with a partial checksum (the field holds the pseudo-header
sum, the sender left the rest to the device) or as a super-segment (one
TCP or UDP packet standing for gso_size-byte pieces) is finished here when
it must leave by a port that cannot take it as it is: the kernel's
skb_checksum_help() and tcp_gso_segment() / __udp_gso_segment().
"""
import struct

from tunrouter.wire import ipv4, tcp
from tunrouter.wire.checksum import csum
from tunrouter.wire.l4 import l4_csum

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_NOT_LAST = ~(tcp.FIN | tcp.PSH) & 0xFF
_NOT_FIRST = ~tcp.CWR & 0xFF


def headers_len(packet) -> int:
    """The IPv4 and TCP/UDP header bytes every segment repeats."""
    hlen = (packet[0] & 0x0F) << 2
    if packet[ipv4.PROTO] == ipv4.PROTO_TCP:
        return hlen + ((packet[hlen + tcp.DATA_OFF] >> 4) << 2)
    return hlen + 8


def wire_count(packet, gso_size: int) -> tuple[int, int]:
    """(packets, bytes) a super-segment becomes on the wire."""
    hdrs = headers_len(packet)
    data = len(packet) - hdrs
    segs = max(1, -(-data // gso_size))
    return segs, len(packet) + (segs - 1) * hdrs


def finish_csum(packet, start: int, offset: int) -> None:
    """Complete a partial checksum: the sum from start on, the pseudo-header sum included.

    A UDP checksum that comes out 0 is sent as 0xFFFF (0 means none).
    """
    value = csum(packet[start:])
    if not value and packet[ipv4.PROTO] == ipv4.PROTO_UDP:
        value = 0xFFFF
    _U16.pack_into(packet, start + offset, value)


def segment(packet, gso_size: int) -> list[bytearray]:
    """Cut a TCP or UDP super-segment into complete packets of gso_size payload bytes.

    Each piece gets the headers with its own total length, IP id (counting
    up from the super-segment's), header checksum and full L4 checksum;
    TCP pieces get their sequence number, FIN and PSH only on the last and
    CWR only on the first; UDP pieces get their own length.
    """
    hlen = (packet[0] & 0x0F) << 2
    hdrs = headers_len(packet)
    is_tcp = packet[ipv4.PROTO] == ipv4.PROTO_TCP
    head = bytes(packet[:hdrs])
    src, dst = head[12:16], head[16:20]
    ident = _U16.unpack_from(head, 4)[0]
    seq = _U32.unpack_from(head, hlen + tcp.SEQ)[0] if is_tcp else 0
    flags = head[hlen + tcp.FLAGS] if is_tcp else 0
    data = memoryview(packet)[hdrs:]
    count = max(1, -(-len(data) // gso_size))
    pieces = []
    for i in range(count):
        chunk = data[i * gso_size:(i + 1) * gso_size]
        seg = bytearray(head)
        seg += chunk
        _U16.pack_into(seg, ipv4.TOTAL_LEN, hdrs + len(chunk))
        _U16.pack_into(seg, 4, (ident + i) & 0xFFFF)
        seg[ipv4.CHECKSUM:ipv4.CHECKSUM + 2] = b"\0\0"
        _U16.pack_into(seg, ipv4.CHECKSUM, csum(seg[:hlen]))
        if is_tcp:
            _U32.pack_into(seg, hlen + tcp.SEQ, (seq + i * gso_size) & 0xFFFFFFFF)
            f = flags if i == count - 1 else flags & _NOT_LAST
            seg[hlen + tcp.FLAGS] = f if i == 0 else f & _NOT_FIRST
            check = hlen + tcp.CHECKSUM
            seg[check:check + 2] = b"\0\0"
            _U16.pack_into(seg, check, l4_csum(src, dst, ipv4.PROTO_TCP, seg[hlen:]))
        else:
            _U16.pack_into(seg, hlen + 4, len(seg) - hlen)
            seg[hlen + 6:hlen + 8] = b"\0\0"
            _U16.pack_into(seg, hlen + 6, l4_csum(src, dst, ipv4.PROTO_UDP, seg[hlen:]) or 0xFFFF)
        pieces.append(seg)
    return pieces
