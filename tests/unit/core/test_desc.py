"""Every malformed-header drop reason of parse() (kernel: ip_rcv_core)."""
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import IP, UDP, Raw, raw

from tunrouter.core.desc import PacketDesc, parse
from tunrouter.core.verdict import Drop

GOOD = raw(IP(src="10.1.0.2", dst="10.2.0.2") / UDP(sport=1, dport=2) / Raw(b"hello"))


def mutate(offset: int, value: bytes, fix_checksum: bool = True) -> memoryview:
    b = bytearray(GOOD)
    b[offset:offset + len(value)] = value
    if fix_checksum:
        b[10:12] = b"\0\0"
        hlen = min((b[0] & 0xF) * 4, len(b))
        s = int.from_bytes(b[:hlen] + b"\0" * (hlen & 1), "big") % 0xFFFF
        b[10:12] = ((~s & 0xFFFF) if s else 0).to_bytes(2, "big")
    return memoryview(b)


@pytest.mark.parametrize("buf, reason", [
    (memoryview(bytearray(GOOD[:19])), Drop.SHORT),
    (mutate(0, b"\x65"), Drop.BAD_VERSION),
    (mutate(0, b"\x44"), Drop.BAD_HLEN),
    (mutate(0, b"\x4f"), Drop.BAD_HLEN),              # 60-byte header in a 33-byte packet
    (mutate(2, (len(GOOD) + 1).to_bytes(2, "big")), Drop.BAD_LEN),
    (mutate(2, (19).to_bytes(2, "big")), Drop.BAD_LEN),
    (mutate(8, b"\x3f", fix_checksum=False), Drop.BAD_CHECKSUM),
], ids=["short", "version-6", "ihl-4", "ihl-15", "len-beyond-capture", "len-below-header", "checksum"])
def test_malformed_header_is_a_named_drop(buf, reason):
    assert parse(buf, 0) is reason


def test_good_packet_fields():
    d = parse(memoryview(bytearray(GOOD)), 3)
    assert isinstance(d, PacketDesc)
    assert (d.in_port, d.hlen, d.proto, d.ttl, bytes(d.src), bytes(d.dst)) == \
           (3, 20, 17, 64, bytes([10, 1, 0, 2]), bytes([10, 2, 0, 2]))
    assert not d.is_fragment


def test_link_padding_is_trimmed_to_total_length():
    d = parse(memoryview(bytearray(GOOD + b"\0" * 10)), 0)
    assert len(d.buf) == len(GOOD)


@given(st.binary(max_size=80))
def test_parse_never_raises(data):
    d = parse(memoryview(bytearray(data)), 0)
    assert isinstance(d, (Drop, PacketDesc))
    if isinstance(d, PacketDesc):
        assert d.hlen <= len(d.buf)
