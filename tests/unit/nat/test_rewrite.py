"""tunrouter.nat.rewrite on packet bytes: manip_pkt, nat_packet, icmp_reply_translation.

Every result is compared with the packet Scapy builds with the new header
fields, checksums computed afresh.
"""
from nat_packets import checksums_ok, echo, tcp, udp
from packets import H1, R_WAN, SRV, ip_bytes
from scapy.all import ICMP, IP, UDP, Raw, raw

from tunrouter.conntrack.conn import (
    IPS_DST_NAT,
    IPS_DST_NAT_DONE,
    IPS_SRC_NAT,
    IPS_SRC_NAT_DONE,
    Conn,
)
from tunrouter.nat.range import DST, SRC
from tunrouter.nat.rewrite import icmp_reply_translation, manip_pkt, nat_packet

NAT_IP = ip_bytes(R_WAN)


def rewritten(pkt, off: int, manip: int, addr: str, port: int) -> bytes:
    buf = bytearray(raw(pkt))
    manip_pkt(buf, off, manip, ip_bytes(addr), port)
    return bytes(buf)


def ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def test_manip_src_and_dst_of_udp_tcp_and_echo():
    for pkt, field in ((udp(H1, SRV, 5000, 53, b"query"), "sport"),
                       (tcp(H1, SRV, 40000, 80, "PA", data=b"GET /"), "sport"),
                       (echo(H1, SRV, ident=7), "id")):
        out = rewritten(pkt, 0, SRC, R_WAN, 1234)
        want = pkt.copy()
        want.src = R_WAN
        setattr(want.payload, field, 1234)
        del want.chksum, want.payload.chksum
        assert out == raw(want)
        assert checksums_ok(out)
    for pkt in (udp(SRV, R_WAN, 53, 1234, b"answer"), tcp(SRV, R_WAN, 80, 1234, "SA")):
        out = rewritten(pkt, 0, DST, H1, 5000)
        want = pkt.copy()
        want.dst = H1
        want.payload.dport = 5000
        del want.chksum, want.payload.chksum
        assert out == raw(want)


def test_echo_reply_dst_manip_sets_the_id():
    rep = echo(SRV, R_WAN, ident=1234, reply=True)
    out = rewritten(rep, 0, DST, H1, 7)
    assert out == raw(IP(src=SRV, dst=H1) / ICMP(type=0, id=7, seq=1) / Raw(b"ping"))


def test_udp_without_checksum_stays_without():
    pkt = IP(src=H1, dst=SRV) / UDP(sport=5000, dport=53, chksum=0) / Raw(b"query")
    for manip in (SRC, DST):
        out = rewritten(pkt, 0, manip, R_WAN, 1234)
        assert out[26:28] == b"\0\0"
        assert checksums_ok(out)
        ports = (IP(out)[UDP].sport, IP(out)[UDP].dport)
        assert ports == ((1234, 53) if manip == SRC else (5000, 1234))


def test_udp_checksum_computing_to_zero_is_sent_as_ffff():
    pkt = udp(H1, SRV, 5000, 53, b"query")
    # The port that makes the translated datagram's sum 0xFFFF, i.e. its
    # checksum 0: UDP must send that as 0xFFFF (0 means "no checksum").
    b = bytearray(raw(pkt))
    b[12:16] = NAT_IP
    b[20:22] = b[26:28] = b"\0\0"
    pseudo = b[12:20] + bytes([0, 17]) + b[24:26]
    port = 0xFFFF - ones_sum(bytes(pseudo + b[20:]))
    out = rewritten(pkt, 0, SRC, R_WAN, port)
    assert out[26:28] == b"\xff\xff"
    assert ones_sum(bytes(out[12:20]) + bytes([0, 17]) + out[24:26] + out[20:]) == 0xFFFF
    want = udp(R_WAN, SRV, port, 53, b"query")
    assert raw(want)[26:28] == b"\xff\xff"          # Scapy agrees
    assert out == raw(want)


def test_quoted_headers_cut_short_get_what_fits():
    syn = tcp(H1, SRV, 40000, 80)
    b = raw(syn)
    # Under 8 bytes of TCP (or UDP) the kernel's manip fails: nothing is written.
    for short in (b[:24], b[:27], raw(udp(H1, SRV, 5000, 53))[:27]):
        buf = bytearray(short)
        assert not manip_pkt(buf, 0, SRC, NAT_IP, 1234)
        assert bytes(buf) == short
    # 8 bytes of TCP: the port changes, nothing else (no checksum to update).
    translated = raw(tcp(R_WAN, SRV, 1234, 80))
    buf = bytearray(b[:28])
    assert manip_pkt(buf, 0, SRC, NAT_IP, 1234)
    assert bytes(buf) == translated[:28]
    # 18 bytes: the checksum is there but not the whole header: left alone.
    buf = bytearray(b[:38])
    manip_pkt(buf, 0, SRC, NAT_IP, 1234)
    assert bytes(buf) == translated[:36] + b[36:38]
    # 20 bytes: updated.
    buf = bytearray(b)
    manip_pkt(buf, 0, SRC, NAT_IP, 1234)
    assert bytes(buf) == translated


def test_manip_at_an_offset_leaves_the_bytes_before_it():
    head = b"\x01" * 28
    pkt = udp(H1, SRV, 5000, 53)
    buf = bytearray(head + raw(pkt))
    manip_pkt(buf, 28, DST, NAT_IP, 99)
    assert bytes(buf[:28]) == head
    assert bytes(buf[28:]) == raw(udp(H1, R_WAN, 5000, 99))


def masqueraded(port: int = 1234) -> Conn:
    ct = Conn((ip_bytes(H1), ip_bytes(SRV), 17, 5000, 53),
              (ip_bytes(SRV), NAT_IP, 17, 53, port))
    ct.status = IPS_SRC_NAT | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE
    return ct


def test_nat_packet_both_directions():
    ct = masqueraded()
    buf = bytearray(raw(udp(H1, SRV, 5000, 53)))
    nat_packet(buf, ct, 0, SRC)
    assert bytes(buf) == raw(udp(R_WAN, SRV, 1234, 53))
    buf = bytearray(raw(udp(SRV, R_WAN, 53, 1234)))
    nat_packet(buf, ct, 1, DST)
    assert bytes(buf) == raw(udp(SRV, H1, 53, 5000))


def test_icmp_reply_translation_of_an_error_about_the_reply_direction():
    ct = masqueraded()
    quote = raw(udp(R_WAN, SRV, 1234, 53))
    err = IP(src="203.0.113.254", dst=R_WAN) / ICMP(type=3, code=3) / Raw(quote)
    buf = bytearray(raw(err))
    # At PREROUTING (DST manip) for a RELATED_REPLY error: translated.
    assert icmp_reply_translation(buf, 20, ct, 1, DST)
    want = (IP(src="203.0.113.254", dst=H1) / ICMP(type=3, code=3)
            / Raw(raw(udp(H1, SRV, 5000, 53))))
    assert bytes(buf) == raw(want)
    # At POSTROUTING (SRC manip) the same error needs nothing more.
    assert icmp_reply_translation(buf, 20, ct, 1, SRC)
    assert bytes(buf) == raw(want)


def test_icmp_reply_translation_refuses_redirects_only_about_translated_connections():
    quote = raw(udp(R_WAN, SRV, 1234, 53))
    redirect = raw(IP(src="203.0.113.254", dst=R_WAN) / ICMP(type=5, code=1, gw="203.0.113.2")
                   / Raw(quote))
    assert not icmp_reply_translation(bytearray(redirect), 20, masqueraded(), 1, DST)
    dnat = masqueraded()
    dnat.status = IPS_DST_NAT | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE
    assert not icmp_reply_translation(bytearray(redirect), 20, dnat, 1, SRC)
    plain = Conn((ip_bytes(H1), ip_bytes(SRV), 17, 5000, 53),
                 (ip_bytes(SRV), ip_bytes(H1), 17, 53, 5000))
    plain.status = IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE
    buf = bytearray(redirect)
    assert icmp_reply_translation(buf, 20, plain, 1, DST)
    assert bytes(buf) == redirect
