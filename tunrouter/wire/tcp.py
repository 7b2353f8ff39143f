"""TCP header layout (RFC 9293 §3.1)."""
import struct

SPORT = 0
DPORT = 2
SEQ = 4
ACK_NO = 8
DATA_OFF = 12
FLAGS = 13
WINDOW = 14
CHECKSUM = 16
MIN_HLEN = 20

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20

HEADER = struct.Struct("!HHIIBBHHH")
