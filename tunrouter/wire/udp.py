"""UDP header layout (RFC 768)."""
import struct

SPORT = 0
DPORT = 2
LENGTH = 4
CHECKSUM = 6
HLEN = 8

HEADER = struct.Struct("!HHHH")
