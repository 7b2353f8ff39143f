"""ARP for IPv4 over Ethernet (RFC 826).  The 28-byte body after the Ethernet header."""
import struct

HTYPE_ETHER = 1
OP_REQUEST = 1
OP_REPLY = 2
LEN = 28

BODY = struct.Struct("!HHBBH6s4s6s4s")   # htype ptype hlen plen op sha spa tha tpa


def parse(body: memoryview) -> tuple[int, bytes, bytes, bytes, bytes] | None:
    """Return (op, sha, spa, tha, tpa) for an Ethernet/IPv4 ARP body, else None."""
    if len(body) < LEN:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = BODY.unpack_from(body)
    if (htype, ptype, hlen, plen) != (HTYPE_ETHER, 0x0800, 6, 4):
        return None
    return op, sha, spa, tha, tpa


def emit(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> bytes:
    return BODY.pack(HTYPE_ETHER, 0x0800, 6, 4, op, sha, spa, tha, tpa)
