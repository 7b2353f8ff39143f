"""IPv4 header layout (RFC 791 §3.1).  Offsets and codecs only: no state, no I/O."""
import struct

from tunrouter.wire.checksum import csum

VER_IHL = 0
TOS = 1
TOTAL_LEN = 2        # 2..4
IDENT = 4            # 4..6
FLAGS_FRAG = 6       # 6..8: 3 flag bits, 13-bit offset in 8-byte units
TTL = 8
PROTO = 9
CHECKSUM = 10        # 10..12
SRC = 12             # 12..16
DST = 16             # 16..20
MIN_HLEN = 20

FLAG_DF = 0x4000
FLAG_MF = 0x2000
OFFSET_MASK = 0x1FFF

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17

FIXED = struct.Struct("!BBHHHBBH4s4s")   # the 20 fixed bytes


def emit(tos: int, ident: int, frag: int, ttl: int, proto: int,
         src: bytes, dst: bytes, payload: bytes) -> bytes:
    """Build an option-less IPv4 packet around payload, header checksum filled in."""
    head = bytearray(FIXED.pack(0x45, tos, MIN_HLEN + len(payload), ident, frag,
                                ttl, proto, 0, src, dst))
    head[CHECKSUM:CHECKSUM + 2] = csum(head).to_bytes(2, "big")
    return bytes(head) + payload


def dec_ttl(buf: bytearray | memoryview) -> None:
    """Decrement TTL in place and patch the checksum (kernel: ip_decrease_ttl).

    The TTL is the high byte of the 16-bit word at offset 8, so the word drops
    by 0x0100 and the one's-complement checksum rises by 0x0100 (RFC 1141),
    with the end-around carry folded back in.
    """
    check = ((buf[CHECKSUM] << 8) | buf[CHECKSUM + 1]) + 0x0100
    check = (check + (check >= 0xFFFF)) & 0xFFFF
    buf[CHECKSUM] = check >> 8
    buf[CHECKSUM + 1] = check & 0xFF
    buf[TTL] -= 1


def ntoa(addr: bytes) -> str:
    """Dotted quad for 4 raw bytes (for printing; not for the packet path)."""
    return "%d.%d.%d.%d" % tuple(addr)
