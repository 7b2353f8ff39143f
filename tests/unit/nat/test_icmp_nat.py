"""ICMP errors about translated connections (nf_nat_icmp_reply_translation), byte for byte.

The expected packet is what the inside host must see: the error as if its
own packet had met it, quoted header and all, every checksum (outer IP,
ICMP, quoted IP, quoted UDP/TCP/ICMP where quoted whole) as Scapy computes
it for that packet.
"""
from nat_packets import FAR, H3, draws, echo, hop, nat_router, send, tcp, udp
from packets import H1, LAN_TUN, R_WAN, SRV, WAN
from scapy.all import ICMP, IP, Raw, raw

from tunrouter.core.verdict import Drop

MASQ = "-A POSTROUTING -o wan0 -j MASQUERADE"


def error_from_far(icmp_type: int, code: int, quote: bytes, dst: str = R_WAN, ttl: int = 64,
                   **fields):
    return IP(src=FAR, dst=dst, ttl=ttl) / ICMP(type=icmp_type, code=code, **fields) / Raw(quote)


def remapped_flow(r, pkt, clash):
    """Send clash then pkt from LAN: pkt's port (or id) is remapped; the packet that left."""
    send(r, LAN_TUN, clash)
    ((_, out),) = send(r, LAN_TUN, pkt)
    return out


def test_time_exceeded_about_masqueraded_udp_quoting_8_bytes():
    r = nat_router(MASQ)
    q = udp(H1, SRV, 5000, 53, b"query", ttl=2)
    fwd = remapped_flow(r, q, udp(H3, SRV, 5000, 53))
    port = 1024 + draws(1)[0] % 64512
    assert fwd == hop(q, src=R_WAN, sport=port)
    err = error_from_far(11, 0, fwd[:28])
    expected = error_from_far(11, 0, hop(q)[:28], dst=H1, ttl=63)
    assert send(r, WAN, err) == [(LAN_TUN, raw(expected))]


def test_time_exceeded_about_masqueraded_udp_quoting_it_whole():
    r = nat_router(MASQ)
    q = udp(H1, SRV, 5000, 53, b"a longer query" * 3, ttl=2)
    fwd = remapped_flow(r, q, udp(H3, SRV, 5000, 53))
    expected = error_from_far(11, 0, hop(q), dst=H1, ttl=63)
    assert send(r, WAN, error_from_far(11, 0, fwd)) == [(LAN_TUN, raw(expected))]


def test_time_exceeded_about_masqueraded_tcp_quoting_8_bytes():
    r = nat_router(MASQ)
    syn = tcp(H1, SRV, 40000, 80, ttl=2)
    fwd = remapped_flow(r, syn, tcp(H3, SRV, 40000, 80))
    expected = error_from_far(11, 0, hop(syn)[:28], dst=H1, ttl=63)
    assert send(r, WAN, error_from_far(11, 0, fwd[:28])) == [(LAN_TUN, raw(expected))]


def test_time_exceeded_about_masqueraded_tcp_quoting_the_whole_header():
    r = nat_router(MASQ)
    syn = tcp(H1, SRV, 40000, 80, ttl=2, data=b"fast open")
    fwd = remapped_flow(r, syn, tcp(H3, SRV, 40000, 80))
    # Header and data quoted: the quoted TCP checksum is translated back too.
    expected = error_from_far(11, 0, hop(syn), dst=H1, ttl=63)
    assert send(r, WAN, error_from_far(11, 0, fwd)) == [(LAN_TUN, raw(expected))]
    # The whole header without the data: likewise.
    expected = error_from_far(11, 0, hop(syn)[:40], dst=H1, ttl=63)
    assert send(r, WAN, error_from_far(11, 0, fwd[:40])) == [(LAN_TUN, raw(expected))]


def test_quoted_tcp_checksum_left_alone_when_the_header_is_cut_short():
    r = nat_router(MASQ)
    syn = tcp(H1, SRV, 40000, 80, ttl=2)
    fwd = remapped_flow(r, syn, tcp(H3, SRV, 40000, 80))
    # 18 bytes of TCP: the checksum is there, the rest of the header is not.
    # The kernel updates a quoted TCP checksum only with the full 20 bytes.
    quote = hop(syn)[:36] + fwd[36:38]
    expected = error_from_far(11, 0, quote, dst=H1, ttl=63)
    assert send(r, WAN, error_from_far(11, 0, fwd[:38])) == [(LAN_TUN, raw(expected))]


def test_time_exceeded_about_masqueraded_echo_restores_the_quoted_id():
    r = nat_router(MASQ)
    ping = echo(H1, SRV, ident=7, ttl=2)
    fwd = remapped_flow(r, ping, echo(H3, SRV, ident=7))
    assert fwd == hop(ping, src=R_WAN, id=draws(1)[0])
    for cut in (28, len(fwd)):
        expected = error_from_far(11, 0, hop(ping)[:cut], dst=H1, ttl=63)
        assert send(r, WAN, error_from_far(11, 0, fwd[:cut])) == [(LAN_TUN, raw(expected))]


def test_frag_needed_about_a_dnat_connection_reaches_the_server():
    r = nat_router("-A PREROUTING -i wan0 -p tcp --dport 8080 "
                   "-j DNAT --to-destination 10.1.0.2:80")
    send(r, WAN, tcp(SRV, R_WAN, 40000, 8080, seq=1000))
    send(r, LAN_TUN, tcp(H1, SRV, 80, 40000, "SA", seq=5000, ack=1001))
    send(r, WAN, tcp(SRV, R_WAN, 40000, 8080, "A", seq=1001, ack=5001))
    seg = tcp(H1, SRV, 80, 40000, "PA", seq=5001, ack=1001, data=bytes(1400))
    seg.flags = "DF"
    ((port, fwd),) = send(r, LAN_TUN, seg)
    assert (port, fwd) == (WAN, hop(seg, src=R_WAN, sport=8080))
    # A router beyond wan0 with a 1280-byte link quotes what fits in 576 bytes.
    err = error_from_far(3, 4, fwd[:548], nexthopmtu=1280)
    expected = error_from_far(3, 4, hop(seg)[:548], dst=H1, ttl=63, nexthopmtu=1280)
    assert send(r, WAN, err) == [(LAN_TUN, raw(expected))]


def test_routers_own_time_exceeded_about_a_dnat_connection_quotes_what_the_client_sent():
    r = nat_router("-A PREROUTING -i wan0 -p udp --dport 8080 "
                   "-j DNAT --to-destination 10.1.0.2:80")
    send(r, WAN, udp(SRV, R_WAN, 40000, 8080))
    late = udp(SRV, R_WAN, 40000, 8080, b"again", ttl=1)
    expected = IP(src=R_WAN, dst=SRV, ttl=64, id=1, tos=0xC0) / ICMP(type=11, code=0) / Raw(
        raw(late))
    assert send(r, WAN, late) == [(WAN, raw(expected))]


def test_errors_about_untranslated_connections_pass_unchanged():
    r = nat_router()                    # nat table loaded, no rule: null bindings
    q = udp(H1, SRV, 5000, 53, ttl=2)
    ((_, fwd),) = send(r, LAN_TUN, q)
    assert fwd == hop(q)
    err = error_from_far(11, 0, fwd[:28], dst=H1)
    assert send(r, WAN, err) == [(LAN_TUN, hop(err))]
    # A redirect too: only one about a translated connection is refused.
    redirect = error_from_far(5, 1, fwd[:28], dst=H1, gw="203.0.113.253")
    assert send(r, WAN, redirect) == [(LAN_TUN, hop(redirect))]
    assert r.counters.drops[Drop.NAT_REDIRECT] == 0


def test_redirect_about_a_translated_connection_is_dropped():
    r = nat_router(MASQ)
    ((_, fwd),) = send(r, LAN_TUN, udp(H1, SRV, 5000, 53))
    redirect = error_from_far(5, 1, fwd[:28], gw="203.0.113.253")
    assert send(r, WAN, redirect) == []
    assert r.counters.drops[Drop.NAT_REDIRECT] == 1
    assert r.conntrack.count() == 1


def test_error_from_inside_about_a_dnat_reply_is_translated_towards_the_client():
    r = nat_router("-A PREROUTING -i wan0 -p udp --dport 8080 "
                   "-j DNAT --to-destination 10.1.0.2:80")
    q = udp(SRV, R_WAN, 40000, 8080, b"ask")
    ((_, fwd),) = send(r, WAN, q)
    # The server's host has nothing on port 80: it answers port unreachable.
    unreach = IP(src=H1, dst=SRV) / ICMP(type=3, code=3) / Raw(fwd)
    expected = IP(src=R_WAN, dst=SRV, ttl=63) / ICMP(type=3, code=3) / Raw(hop(q))
    assert send(r, LAN_TUN, unreach) == [(WAN, raw(expected))]


def test_error_about_a_hairpinned_connection_is_translated_at_both_hooks():
    r = nat_router("-A PREROUTING -d 203.0.113.1 -p udp --dport 53 -j DNAT --to-destination 10.1.0.2",
                   "-A POSTROUTING -s 10.1.0.0/24 -d 10.1.0.2 -p udp --dport 53 -j MASQUERADE")
    q = udp(H3, R_WAN, 40000, 53, b"lookup")
    ((_, fwd),) = send(r, LAN_TUN, q)
    assert fwd == hop(q, src="10.1.0.1", dst=H1)
    # The server's host has no resolver: port unreachable to the router's LAN
    # address.  PREROUTING gives the quote back its client source, POSTROUTING
    # its public destination: the client sees an error about what it sent.
    unreach = IP(src=H1, dst="10.1.0.1") / ICMP(type=3, code=3) / Raw(fwd)
    expected = IP(src=R_WAN, dst=H3, ttl=63) / ICMP(type=3, code=3) / Raw(hop(q))
    assert send(r, LAN_TUN, unreach) == [(LAN_TUN, raw(expected))]


def test_error_quoting_less_than_8_bytes_of_a_translated_header_is_dropped():
    # The kernel must write the quoted ports (and look at the UDP checksum):
    # with fewer than 8 bytes its manip fails and the error is dropped.
    for first in (udp(H1, SRV, 5000, 53), tcp(H1, SRV, 40000, 80)):
        for cut in (24, 27):
            r = nat_router(MASQ)
            ((_, fwd),) = send(r, LAN_TUN, first)
            assert send(r, WAN, error_from_far(11, 0, fwd[:cut])) == []
            assert r.counters.drops[Drop.SHORT] == 1
    # About a connection nothing translates, the quote is not touched: it passes.
    r = nat_router()
    ((_, fwd),) = send(r, LAN_TUN, udp(H1, SRV, 5000, 53))
    err = error_from_far(11, 0, fwd[:24], dst=H1)
    assert send(r, WAN, err) == [(LAN_TUN, hop(err))]
