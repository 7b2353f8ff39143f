"""ICMP for IPv4 (RFC 792): types, codes and the 8-byte header."""
import struct

from tunrouter.wire.checksum import csum

ECHO_REPLY = 0
DEST_UNREACH = 3
SOURCE_QUENCH = 4
REDIRECT = 5
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
PARAMETER_PROB = 12
TIMESTAMP = 13
TIMESTAMP_REPLY = 14
INFO_REQUEST = 15
INFO_REPLY = 16
ADDRESS = 17
ADDRESS_REPLY = 18
NR_TYPES = 18          # highest type RFC 792/950 define (kernel: NR_ICMP_TYPES)

# Destination unreachable codes (RFC 792, RFC 1812 §5.2.7.1)
NET_UNREACH = 0
HOST_UNREACH = 1
PROT_UNREACH = 2
PORT_UNREACH = 3
FRAG_NEEDED = 4
# Time exceeded codes
EXC_TTL = 0
EXC_FRAGTIME = 1

# Messages that report an error about another datagram (RFC 1812 §4.3.2.7:
# never answered with another error).
ERRORS = frozenset({DEST_UNREACH, SOURCE_QUENCH, REDIRECT, TIME_EXCEEDED, PARAMETER_PROB})

HEADER = struct.Struct("!BBHI")   # type, code, checksum, rest of header
HLEN = 8


def emit(icmp_type: int, code: int, rest: int, body: bytes | memoryview) -> bytes:
    """An ICMP message with its checksum computed over header and body."""
    msg = bytearray(HEADER.pack(icmp_type, code, 0, rest))
    msg += body
    msg[2:4] = csum(msg).to_bytes(2, "big")
    return bytes(msg)
