"""PacketDesc and parse(): the one place an IPv4 header is read and validated.

Checks mirror the kernel's ip_rcv_core(): version, IHL >= 5, total length
within what was captured and at least the header, header checksum.  A frame
longer than its total length is trimmed to it (link padding), as the kernel
does with pskb_trim_rcsum().
"""
from tunrouter.core.verdict import Drop
from tunrouter.wire import ipv4

_FIXED = ipv4.FIXED.unpack_from

# PacketDesc.csum, as the kernel's skb->ip_summed: what is known of the L4 checksum
CHECKSUM_NONE = 0            # complete, not yet verified: conntrack verifies it
CHECKSUM_PARTIAL = 1         # the field holds the pseudo-header sum; whoever sends it finishes it
CHECKSUM_UNNECESSARY = 2     # complete, and verified by the device the packet came from


class PacketDesc:
    """An IPv4 packet parsed once (pf: struct pf_pdesc).

    Invariant after parse(): buf is exactly tot_len bytes, hlen <= tot_len, and the
    header checksum was valid.  csum and gso carry what an offloading device
    said of the packet (core.offload).  The buffer is lent by the driver for one
    process() call; nothing may keep a reference to it afterwards.
    """
    __slots__ = ("buf", "csum", "dst", "frag", "gso", "hlen", "ident", "in_port", "proto", "src",
                 "tos", "ttl")

    def __init__(self, buf, in_port, hlen, tos, ident, frag, ttl, proto, src, dst):
        self.buf = buf
        self.in_port = in_port
        self.hlen = hlen
        self.tos = tos
        self.ident = ident
        self.frag = frag          # flags and offset word: DF 0x4000, MF 0x2000, offset & 0x1FFF
        self.ttl = ttl
        self.proto = proto
        self.src = src            # 4 raw bytes
        self.dst = dst
        self.csum = CHECKSUM_NONE
        self.gso = None           # a super-segment: (virtio gso_type, gso_size)

    @property
    def is_fragment(self) -> bool:
        return bool(self.frag & (ipv4.FLAG_MF | ipv4.OFFSET_MASK))

    @property
    def payload(self) -> memoryview:
        return self.buf[self.hlen:]


def parse(buf: memoryview, in_port: int) -> PacketDesc | Drop:
    """Validate an IPv4 packet; return its descriptor or why it must be dropped."""
    n = len(buf)
    if n < ipv4.MIN_HLEN:
        return Drop.SHORT
    ver_ihl, tos, tot_len, ident, frag, ttl, proto, _check, src, dst = _FIXED(buf)
    if ver_ihl >> 4 != 4:
        return Drop.BAD_VERSION
    hlen = (ver_ihl & 0x0F) << 2
    if hlen < ipv4.MIN_HLEN or hlen > n:
        return Drop.BAD_HLEN
    if tot_len > n or tot_len < hlen:
        return Drop.BAD_LEN
    # One's-complement sum of the header is 0xFFFF exactly when the big-endian
    # integer is 0 mod 0xFFFF (a header is never all zeros).
    if int.from_bytes(buf[:hlen], "big") % 0xFFFF:
        return Drop.BAD_CHECKSUM
    if tot_len != n:
        buf = buf[:tot_len]
    return PacketDesc(buf, in_port, hlen, tos, ident, frag, ttl, proto, src, dst)
