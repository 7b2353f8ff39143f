"""Transport checksums over the IPv4 pseudo-header (RFC 768, RFC 9293 §3.1)."""
import struct

from tunrouter.wire.checksum import csum

PSEUDO = struct.Struct("!4s4sBBH")


def l4_csum(src: bytes, dst: bytes, proto: int, segment: bytes | bytearray) -> int:
    """Checksum of a TCP or UDP segment whose checksum field is zero."""
    return csum(PSEUDO.pack(src, dst, 0, proto, len(segment)) + bytes(segment))
