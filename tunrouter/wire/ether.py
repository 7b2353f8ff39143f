"""Ethernet II framing (IEEE 802.3 with EtherType) and MAC address helpers."""
import struct

DST = 0        # 0..6
SRC = 6        # 6..12
TYPE = 12      # 12..14
HLEN = 14

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806

BROADCAST = b"\xff" * 6

HEADER = struct.Struct("!6s6sH")


def is_multicast(mac: bytes | memoryview) -> bool:
    """Group bit set: broadcast or multicast (IEEE 802 §8.2)."""
    return bool(mac[0] & 1)


def header(dst: bytes, src: bytes, ethertype: int) -> bytes:
    return HEADER.pack(dst, src, ethertype)


def mac_ntoa(mac: bytes) -> str:
    return ":".join("%02x" % b for b in mac)


def mac_aton(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)
