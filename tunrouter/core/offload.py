"""Offloads on the packet path: what a frame's virtio-net header tells the core, and
how a packet that still carries offload work leaves.

A port opened with IFF_VNET_HDR and TUNSETOFFLOAD hands the router what its
host's stack sends before any device finished it: TCP and UDP packets whose
checksum field holds only the pseudo-header sum (NEEDS_CSUM), and TCP
super-segments of up to 64 KiB (GSO) that stand for many wire segments.
The core keeps them that way as far as it can: conntrack does not verify a
partial checksum (the kernel's skb_csum_unnecessary()), NAT and sequence
adjustment update it as the kernel's inet_proto_csum_replace*() do, window
tracking sees the super-segment as one.  Such a packet leaves whole, with
its header, by a port that offloads too and whose MTU fits one segment
(skb_gso_validate_network_len()); anywhere else it is finished here:
segmented, checksummed, then fragmented like any packet.

Only the TCP and UDP checksum at the transport header is kept partial; any
other partial checksum a header asks for is finished on arrival.
"""
from tunrouter.core.desc import CHECKSUM_NONE, CHECKSUM_PARTIAL, CHECKSUM_UNNECESSARY, PacketDesc
from tunrouter.core.verdict import Drop
from tunrouter.wire import gso, ipv4, tcp, vnet

_TCP, _UDP = ipv4.PROTO_TCP, ipv4.PROTO_UDP
_CSUM_OFFSET = {_TCP: tcp.CHECKSUM, _UDP: 6}
_GSO_PROTO = {vnet.GSO_TCPV4: _TCP, vnet.GSO_UDP_L4: _UDP}
_FRAGMENTED = ipv4.FLAG_MF | ipv4.OFFSET_MASK


def take(d: PacketDesc, hdr, base: int = 0) -> Drop | None:
    """Read the virtio-net header hdr (writable) into d.csum and d.gso.

    base: the link header's length before d's packet (Ethernet on a TAP
    port), from which the header's csum_start counts.

    Returns why the frame must be dropped when the header asks for what no
    stack sends: a checksum outside the packet, a partial checksum or a
    super-segment on a fragment, a segmentation type the port did not offer
    or that does not match the packet.
    """
    flags, gso_type, _hdr_len, gso_size, start, offset = vnet.unpack(hdr)
    start -= base
    buf = d.buf
    proto = d.proto
    if flags & vnet.NEEDS_CSUM:
        if d.frag & _FRAGMENTED or start < d.hlen or start + offset + 2 > len(buf):
            return Drop.BAD_OFFLOAD
        l4_min = d.hlen + (tcp.MIN_HLEN if proto == _TCP else 8)
        if start == d.hlen and _CSUM_OFFSET.get(proto) == offset and len(buf) >= l4_min:
            d.csum = CHECKSUM_PARTIAL
        else:
            gso.finish_csum(buf, start, offset)
            hdr[0] = flags & ~vnet.NEEDS_CSUM
    elif flags & vnet.DATA_VALID:
        d.csum = CHECKSUM_UNNECESSARY
    if gso_type != vnet.GSO_NONE:
        if (_GSO_PROTO.get(gso_type & ~vnet.GSO_ECN) != proto or not gso_size
                or d.csum != CHECKSUM_PARTIAL):
            return Drop.BAD_OFFLOAD
        if proto == _TCP and gso.headers_len(buf) > len(buf):
            return Drop.BAD_OFFLOAD
        d.gso = (gso_type, gso_size)
    return None


def segment_fits(d: PacketDesc, mtu: int) -> bool:
    """A super-segment whose every segment fits mtu (skb_gso_validate_network_len())."""
    return gso.headers_len(d.buf) + d.gso[1] <= mtu


def header(d: PacketDesc, buf, base: int = 0) -> bytes:
    """The virtio-net header for d's packet (in buf) leaving by an offloading port
    behind a base-byte link header."""
    if d.csum != CHECKSUM_PARTIAL:
        return vnet.NONE
    if d.gso is None:
        return vnet.header(True, base + d.hlen, _CSUM_OFFSET[d.proto])
    return vnet.header(True, base + d.hlen, _CSUM_OFFSET[d.proto], d.gso[0], d.gso[1],
                       base + gso.headers_len(buf))


def finish(d: PacketDesc, buf) -> list:
    """Complete packets for a port that cannot finish d's packet (buf) itself."""
    if d.gso is not None:
        return gso.segment(buf, d.gso[1])
    if d.csum == CHECKSUM_PARTIAL:
        gso.finish_csum(buf, d.hlen, _CSUM_OFFSET[d.proto])
        d.csum = CHECKSUM_NONE
    return [buf]
