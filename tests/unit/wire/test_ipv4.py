from scapy.all import IP, ICMP, Raw, raw

from tunrouter.wire import ipv4
from tunrouter.wire.checksum import csum_ok
from tunrouter.wire.fragment import copied_options, fragment

# 20-byte header + 8-byte ICMP echo: 45 00 00 1c 00 01 00 00 40 01 ...
PACKET_BYTES = bytes(raw(IP(src="10.1.0.2", dst="203.0.113.80", id=1, ttl=64) / ICMP(id=7, seq=1)))


def test_deconstruct():
    ver_ihl, tos, tot_len, ident, frag, ttl, proto, check, src, dst = ipv4.FIXED.unpack_from(PACKET_BYTES)
    assert (ver_ihl, tos, tot_len, ident, frag, ttl, proto) == (0x45, 0, 28, 1, 0, 64, 1)
    assert (ipv4.ntoa(src), ipv4.ntoa(dst)) == ("10.1.0.2", "203.0.113.80")
    assert csum_ok(PACKET_BYTES[:20])


def test_construct():
    out = ipv4.emit(0, 1, 0, 64, ipv4.PROTO_ICMP, bytes([10, 1, 0, 2]), bytes([203, 0, 113, 80]),
                    PACKET_BYTES[20:])
    assert out == PACKET_BYTES


def test_dec_ttl_keeps_checksum_valid_for_every_ttl():
    for ttl in range(1, 256):
        buf = bytearray(raw(IP(src="1.2.3.4", dst="5.6.7.8", ttl=ttl, tos=0xFF, id=0xFFFF)))
        ipv4.dec_ttl(buf)
        assert buf[ipv4.TTL] == ttl - 1
        assert csum_ok(buf[:20]), ttl
        assert bytes(buf) == raw(IP(src="1.2.3.4", dst="5.6.7.8", ttl=ttl - 1, tos=0xFF, id=0xFFFF))


def test_fragment_splits_on_8_byte_boundaries_and_reassembles():
    data = bytes(range(256)) * 16
    pkt = bytes(raw(IP(src="10.1.0.2", dst="10.2.0.2", id=99) / Raw(data)))
    pieces = fragment(pkt, 1000)
    assert all(len(p) <= 1000 for p in pieces)
    offsets = [IP(p).frag * 8 for p in pieces]
    assert offsets == [0, 976, 1952, 2928, 3904]
    assert [bool(IP(p).flags.MF) for p in pieces] == [True] * 4 + [False]
    assert all(csum_ok(p[:20]) for p in pieces)
    assert b"".join(bytes(IP(p).payload) for p in pieces) == data


def test_fragmenting_a_fragment_continues_its_offsets_and_keeps_mf():
    pkt = bytes(raw(IP(src="10.1.0.2", dst="10.2.0.2", flags="MF", frag=100) / Raw(b"a" * 1600)))
    pieces = fragment(pkt, 1000)
    assert [IP(p).frag for p in pieces] == [100, 100 + 122]
    assert all(IP(p).flags.MF for p in pieces)


def test_only_copied_options_repeat_in_later_fragments():
    # 0x94 router alert (copied), 0x07 record route (not copied), then EOL
    options = bytes([0x94, 4, 0, 0, 0x07, 7, 4, 0, 0, 0, 0, 0])
    assert copied_options(options) == bytes([0x94, 4, 0, 0])
    assert copied_options(b"\x01\x01\x00\x00") == b""
