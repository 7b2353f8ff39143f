"""Every NAT target and form through Router.process(): the packets that leave,
the replies translated back, and the entries as `conntrack -L` shows them
(the reply tuple carries the translation, as in Linux).
"""
from nat_packets import (
    FAR,
    H3,
    SRV2,
    checksums_ok,
    draws,
    echo,
    hop,
    lines,
    nat_router,
    send,
    tcp,
    udp,
)
from packets import H1, LAN_TUN, R_LAN, R_WAN, SRV, WAN, ip_bytes
from scapy.all import ICMP, IP, TCP, Raw, fragment, raw

from tunrouter.core.router import StaticRoute
from tunrouter.core.verdict import Drop

MASQ = "-A POSTROUTING -o wan0 -j MASQUERADE"


# -- MASQUERADE ---------------------------------------------------------------

def test_masquerade_udp_keeps_the_free_port_and_translates_the_reply_back():
    r = nat_router(MASQ)
    q = udp(H1, SRV, 5000, 53)
    assert send(r, LAN_TUN, q) == [(WAN, hop(q, src=R_WAN))]
    assert lines(r) == [("udp      17 30 src=10.1.0.2 dst=203.0.113.80 sport=5000 dport=53 "
                         "[UNREPLIED] src=203.0.113.80 dst=203.0.113.1 sport=53 dport=5000 "
                         "mark=0 use=1")]
    a = udp(SRV, R_WAN, 53, 5000, b"answer")
    assert send(r, WAN, a, 1.0) == [(LAN_TUN, hop(a, dst=H1))]
    assert lines(r, 1.0) == [("udp      17 30 src=10.1.0.2 dst=203.0.113.80 sport=5000 dport=53 "
                              "src=203.0.113.80 dst=203.0.113.1 sport=53 dport=5000 mark=0 use=1")]


def test_masquerade_tcp_handshake_both_ways_with_valid_checksums():
    r = nat_router(MASQ)
    syn = tcp(H1, SRV, 40000, 80)
    ((port, out),) = send(r, LAN_TUN, syn)
    assert (port, out) == (WAN, hop(syn, src=R_WAN))
    assert checksums_ok(out)
    synack = tcp(SRV, R_WAN, 80, 40000, "SA", seq=5000, ack=1001)
    assert send(r, WAN, synack) == [(LAN_TUN, hop(synack, dst=H1))]
    ack = tcp(H1, SRV, 40000, 80, "A", seq=1001, ack=5001)
    assert send(r, LAN_TUN, ack) == [(WAN, hop(ack, src=R_WAN))]
    data = tcp(H1, SRV, 40000, 80, "PA", seq=1001, ack=5001, data=b"GET / HTTP/1.0\r\n\r\n")
    ((_, out),) = send(r, LAN_TUN, data)
    assert out == hop(data, src=R_WAN)
    assert checksums_ok(out)
    # (300 s, not 432000: data is in flight unacknowledged)
    assert lines(r) == [("tcp      6 300 ESTABLISHED src=10.1.0.2 dst=203.0.113.80 sport=40000 "
                         "dport=80 src=203.0.113.80 dst=203.0.113.1 sport=80 dport=40000 [ASSURED] "
                         "mark=0 use=1")]


def test_masquerade_icmp_echo_keeps_the_free_id():
    r = nat_router(MASQ)
    req = echo(H1, SRV, ident=7)
    assert send(r, LAN_TUN, req) == [(WAN, hop(req, src=R_WAN))]
    rep = echo(SRV, R_WAN, ident=7, reply=True)
    assert send(r, WAN, rep) == [(LAN_TUN, hop(rep, dst=H1))]
    assert lines(r) == [("icmp     1 30 src=10.1.0.2 dst=203.0.113.80 type=8 code=0 id=7 "
                         "src=203.0.113.80 dst=203.0.113.1 type=0 code=0 id=7 mark=0 use=1")]


def test_masquerade_to_ports_maps_into_the_range():
    r = nat_router("-A POSTROUTING -o wan0 -p udp -j MASQUERADE --to-ports 20000-20009")
    port = 20000 + draws(1)[0] % 10
    q = udp(H1, SRV, 5000, 53)
    assert send(r, LAN_TUN, q) == [(WAN, hop(q, src=R_WAN, sport=port))]
    assert lines(r) == [(f"udp      17 30 src=10.1.0.2 dst=203.0.113.80 sport=5000 dport=53 "
                         f"[UNREPLIED] src=203.0.113.80 dst=203.0.113.1 sport=53 dport={port} "
                         f"mark=0 use=1")]
    a = udp(SRV, R_WAN, 53, port)
    assert send(r, WAN, a) == [(LAN_TUN, hop(a, dst=H1, dport=5000))]


def test_masquerade_uses_the_address_of_the_egress_port():
    r = nat_router("-A POSTROUTING -j MASQUERADE")
    q = udp(SRV, H1, 6000, 7)
    assert send(r, WAN, q) == [(LAN_TUN, hop(q, src=R_LAN))]
    assert lines(r) == [("udp      17 30 src=203.0.113.80 dst=10.1.0.2 sport=6000 dport=7 "
                         "[UNREPLIED] src=10.1.0.2 dst=10.1.0.1 sport=7 dport=6000 mark=0 use=1")]


# -- SNAT ---------------------------------------------------------------------

def test_snat_to_one_address_keeps_the_port():
    r = nat_router("-A POSTROUTING -o wan0 -j SNAT --to-source 203.0.113.5")
    q = udp(H1, SRV, 5000, 53)
    assert send(r, LAN_TUN, q) == [(WAN, hop(q, src="203.0.113.5"))]
    assert lines(r) == [("udp      17 30 src=10.1.0.2 dst=203.0.113.80 sport=5000 dport=53 "
                         "[UNREPLIED] src=203.0.113.80 dst=203.0.113.5 sport=53 dport=5000 "
                         "mark=0 use=1")]
    # The reply is addressed to 203.0.113.5, not the router's address: it is
    # translated at PREROUTING, before routing, and reaches H1.
    a = udp(SRV, "203.0.113.5", 53, 5000)
    assert send(r, WAN, a) == [(LAN_TUN, hop(a, dst=H1))]


def test_snat_to_an_address_range_picks_one_per_source_and_destination():
    r = nat_router("-A POSTROUTING -o wan0 -j SNAT --to-source 203.0.113.5-203.0.113.8")
    ((_, out),) = send(r, LAN_TUN, udp(H1, SRV, 5000, 53))
    chosen = IP(out).src
    assert chosen in ("203.0.113.5", "203.0.113.6", "203.0.113.7", "203.0.113.8")
    q = udp(H1, SRV, 5001, 123)
    assert send(r, LAN_TUN, q) == [(WAN, hop(q, src=chosen))]
    a = udp(SRV, chosen, 53, 5000)
    assert send(r, WAN, a) == [(LAN_TUN, hop(a, dst=H1))]


def test_snat_to_address_and_one_port():
    r = nat_router("-A POSTROUTING -o wan0 -p udp -j SNAT --to-source 203.0.113.5:7000")
    q = udp(H1, SRV, 5000, 53)
    assert send(r, LAN_TUN, q) == [(WAN, hop(q, src="203.0.113.5", sport=7000))]
    assert lines(r) == [("udp      17 30 src=10.1.0.2 dst=203.0.113.80 sport=5000 dport=53 "
                         "[UNREPLIED] src=203.0.113.80 dst=203.0.113.5 sport=53 dport=7000 "
                         "mark=0 use=1")]
    a = udp(SRV, "203.0.113.5", 53, 7000)
    assert send(r, WAN, a) == [(LAN_TUN, hop(a, dst=H1, dport=5000))]


def test_snat_to_address_and_port_range():
    r = nat_router("-A POSTROUTING -o wan0 -p tcp -j SNAT --to-source 203.0.113.5:7000-7009")
    port = 7000 + draws(1)[0] % 10
    syn = tcp(H1, SRV, 40000, 80)
    assert send(r, LAN_TUN, syn) == [(WAN, hop(syn, src="203.0.113.5", sport=port))]
    assert lines(r) == [(f"tcp      6 120 SYN_SENT src=10.1.0.2 dst=203.0.113.80 sport=40000 "
                         f"dport=80 [UNREPLIED] src=203.0.113.80 dst=203.0.113.5 sport=80 "
                         f"dport={port} mark=0 use=1")]
    synack = tcp(SRV, "203.0.113.5", 80, port, "SA", seq=5000, ack=1001)
    assert send(r, WAN, synack) == [(LAN_TUN, hop(synack, dst=H1, dport=40000))]


def test_snat_to_address_range_and_port_range():
    r = nat_router("-A POSTROUTING -o wan0 -p udp -j SNAT "
                   "--to-source 203.0.113.5-203.0.113.6:7000-7009")
    port = 7000 + draws(1)[0] % 10
    ((_, out),) = send(r, LAN_TUN, udp(H1, SRV, 5000, 53))
    chosen = IP(out).src
    assert chosen in ("203.0.113.5", "203.0.113.6")
    assert out == hop(udp(H1, SRV, 5000, 53), src=chosen, sport=port)
    a = udp(SRV, chosen, 53, port)
    assert send(r, WAN, a) == [(LAN_TUN, hop(a, dst=H1, dport=5000))]


def test_snat_persistent_gives_one_source_the_same_address_for_every_destination():
    servers = [f"203.0.113.{80 + i}" for i in range(12)]

    def addresses(flag):
        r = nat_router("-A POSTROUTING -o wan0 -j SNAT --to-source 203.0.113.5-203.0.113.8"
                       + flag)
        # (a new source port each time: one socket would keep its first mapping)
        return {IP(send(r, LAN_TUN, udp(H1, s, 5000 + i, 53))[0][1]).src
                for i, s in enumerate(servers)}
    assert len(addresses(" --persistent")) == 1
    # Without it the address hashes the destination in too.
    assert len(addresses("")) > 1


# -- DNAT ---------------------------------------------------------------------

def test_dnat_to_an_address_keeps_the_port():
    r = nat_router("-A PREROUTING -i wan0 -d 203.0.113.1 -p tcp --dport 80 "
                   "-j DNAT --to-destination 10.1.0.2")
    syn = tcp(SRV, R_WAN, 40000, 80)
    assert send(r, WAN, syn) == [(LAN_TUN, hop(syn, dst=H1))]
    assert lines(r) == [("tcp      6 120 SYN_SENT src=203.0.113.80 dst=203.0.113.1 sport=40000 "
                         "dport=80 [UNREPLIED] src=10.1.0.2 dst=203.0.113.80 sport=80 dport=40000 "
                         "mark=0 use=1")]
    synack = tcp(H1, SRV, 80, 40000, "SA", seq=5000, ack=1001)
    assert send(r, LAN_TUN, synack) == [(WAN, hop(synack, src=R_WAN))]


def test_dnat_to_address_and_port():
    r = nat_router("-A PREROUTING -i wan0 -p tcp --dport 8080 "
                   "-j DNAT --to-destination 10.1.0.2:80")
    syn = tcp(SRV, R_WAN, 40000, 8080)
    assert send(r, WAN, syn) == [(LAN_TUN, hop(syn, dst=H1, dport=80))]
    assert lines(r) == [("tcp      6 120 SYN_SENT src=203.0.113.80 dst=203.0.113.1 sport=40000 "
                         "dport=8080 [UNREPLIED] src=10.1.0.2 dst=203.0.113.80 sport=80 "
                         "dport=40000 mark=0 use=1")]
    synack = tcp(H1, SRV, 80, 40000, "SA", seq=5000, ack=1001)
    assert send(r, LAN_TUN, synack) == [(WAN, hop(synack, src=R_WAN, sport=8080))]


def test_dnat_port_only_keeps_the_destination_address():
    r = nat_router("-A PREROUTING -i lan0 -p tcp --dport 80 -j DNAT --to-destination :8080")
    syn = tcp(H1, SRV, 40000, 80)
    assert send(r, LAN_TUN, syn) == [(WAN, hop(syn, dport=8080))]
    assert lines(r) == [("tcp      6 120 SYN_SENT src=10.1.0.2 dst=203.0.113.80 sport=40000 "
                         "dport=80 [UNREPLIED] src=203.0.113.80 dst=10.1.0.2 sport=8080 "
                         "dport=40000 mark=0 use=1")]
    synack = tcp(SRV, H1, 8080, 40000, "SA", seq=5000, ack=1001)
    assert send(r, WAN, synack) == [(LAN_TUN, hop(synack, sport=80))]


def test_dnat_to_an_address_range_is_stable_per_client():
    r = nat_router("-A PREROUTING -i wan0 -p udp --dport 53 "
                   "-j DNAT --to-destination 10.1.0.2-10.1.0.3")
    ((_, out),) = send(r, WAN, udp(SRV, R_WAN, 6000, 53))
    server = IP(out).dst
    assert server in (H1, H3)
    q = udp(SRV, R_WAN, 6001, 53)
    assert send(r, WAN, q) == [(LAN_TUN, hop(q, dst=server))]
    a = udp(server, SRV, 53, 6001)
    assert send(r, LAN_TUN, a) == [(WAN, hop(a, src=R_WAN))]


def test_dnat_to_the_router_itself_is_answered_from_the_original_destination():
    r = nat_router("-A PREROUTING -i wan0 -p tcp --dport 8080 -j DNAT --to-destination :22")
    # Nothing listens on 22: the router resets, and the reset is translated
    # back to come from port 8080.
    out = send(r, WAN, tcp(SRV, R_WAN, 40000, 8080))
    assert out == [(WAN, raw(IP(src=R_WAN, dst=SRV, ttl=64, id=1, flags="DF")
                             / TCP(sport=8080, dport=40000, flags="RA", seq=0, ack=1001,
                                   window=0)))]
    assert r.conntrack.count() == 0       # the reset closed it


# -- REDIRECT -------------------------------------------------------------------

def test_redirect_goes_to_the_ingress_ports_own_address():
    r = nat_router("-A PREROUTING -p udp --dport 53 -j REDIRECT --to-ports 5353")
    q_lan = udp(H1, SRV, 5000, 53)
    q_wan = udp(SRV, "198.51.100.7", 6000, 53)
    unreach_lan = send(r, LAN_TUN, q_lan)
    unreach_wan = send(r, WAN, q_wan)
    assert lines(r) == [
        ("udp      17 30 src=10.1.0.2 dst=203.0.113.80 sport=5000 dport=53 [UNREPLIED] "
         "src=10.1.0.1 dst=10.1.0.2 sport=5353 dport=5000 mark=0 use=1"),
        ("udp      17 30 src=203.0.113.80 dst=198.51.100.7 sport=6000 dport=53 [UNREPLIED] "
         "src=203.0.113.1 dst=203.0.113.80 sport=5353 dport=6000 mark=0 use=1")]
    # No socket listens: the router's port unreachable is RELATED to the
    # entry and translated back, quoted header and source both, so that it
    # comes from where the client sent to.
    assert unreach_lan == [(LAN_TUN, raw(IP(src=SRV, dst=H1, ttl=64, id=1, tos=0xC0)
                                         / ICMP(type=3, code=3) / Raw(raw(q_lan))))]
    assert unreach_wan == [(WAN, raw(IP(src="198.51.100.7", dst=SRV, ttl=64, id=2, tos=0xC0)
                                     / ICMP(type=3, code=3) / Raw(raw(q_wan))))]


def test_redirect_without_ports_keeps_the_port():
    r = nat_router("-A PREROUTING -i lan0 -p udp --dport 53 -j REDIRECT")
    send(r, LAN_TUN, udp(H1, SRV, 5000, 53))
    assert lines(r) == [("udp      17 30 src=10.1.0.2 dst=203.0.113.80 sport=5000 dport=53 "
                         "[UNREPLIED] src=10.1.0.1 dst=10.1.0.2 sport=53 dport=5000 mark=0 use=1")]


def test_redirect_tcp_reset_comes_from_the_original_destination():
    r = nat_router("-A PREROUTING -i lan0 -p tcp --dport 80 -j REDIRECT --to-ports 3128")
    out = send(r, LAN_TUN, tcp(H1, SRV, 40000, 80))
    assert out == [(LAN_TUN, raw(IP(src=SRV, dst=H1, ttl=64, id=1, flags="DF")
                                 / TCP(sport=80, dport=40000, flags="RA", seq=0, ack=1001,
                                       window=0)))]


# -- --random, --random-fully ---------------------------------------------------

def test_random_and_random_fully_move_a_port_that_was_free():
    for flag in ("--random", "--random-fully"):
        for rule in (f"{MASQ} {flag}",
                     f"-A POSTROUTING -o wan0 -j SNAT --to-source 203.0.113.5 {flag}"):
            r = nat_router(rule)
            snat = "SNAT" in rule
            port = 1024 + draws(1)[0] % 64512
            assert port != 5000
            q = udp(H1, SRV, 5000, 53)
            src = "203.0.113.5" if snat else R_WAN
            assert send(r, LAN_TUN, q) == [(WAN, hop(q, src=src, sport=port))], rule
            a = udp(SRV, src, 53, port)
            assert send(r, WAN, a) == [(LAN_TUN, hop(a, dst=H1, dport=5000))]


def test_random_keeps_the_port_class_of_a_low_port():
    r = nat_router(f"{MASQ} --random")
    q = udp(H1, SRV, 123, 123)
    assert send(r, LAN_TUN, q) == [(WAN, hop(q, src=R_WAN, sport=1 + draws(1)[0] % 511))]


def test_random_with_to_ports_searches_from_a_random_offset():
    r = nat_router("-A POSTROUTING -o wan0 -p udp -j MASQUERADE --to-ports 20000-20009 --random")
    # 20005 is in the range and free, but --random moves it anyway.
    q = udp(H1, SRV, 20005, 53)
    assert send(r, LAN_TUN, q) == [(WAN, hop(q, src=R_WAN, sport=20000 + draws(1)[0] % 10))]


def test_without_random_a_port_inside_to_ports_is_kept():
    r = nat_router("-A POSTROUTING -o wan0 -p udp -j MASQUERADE --to-ports 20000-20009")
    q = udp(H1, SRV, 20005, 53)
    assert send(r, LAN_TUN, q) == [(WAN, hop(q, src=R_WAN))]


# -- masquerade and the egress port ---------------------------------------------------

def test_masqueraded_connection_leaving_by_another_port_is_killed():
    r = nat_router(MASQ)
    q = udp(H1, SRV, 5000, 53)
    send(r, LAN_TUN, q)
    send(r, WAN, udp(SRV, R_WAN, 53, 5000), 0.5)
    # SRV is now reached through a gateway on lan0.
    r.add_route(StaticRoute(ip_bytes(SRV), 32, ip_bytes("10.1.0.254")))
    # A reply still comes in and is translated (only ORIGINAL packets check).
    a = udp(SRV, R_WAN, 53, 5000)
    assert send(r, WAN, a, 0.6) == [(LAN_TUN, hop(a, dst=H1))]
    assert send(r, LAN_TUN, q, 1.0) == []
    assert r.counters.drops[Drop.NAT_OIF_CHANGED] == 1
    assert r.conntrack.count() == 0
    # The next packet starts afresh: -o wan0 no longer matches, no NAT.
    assert send(r, LAN_TUN, q, 1.1) == [(LAN_TUN, hop(q))]
    assert lines(r, 1.1) == [("udp      17 30 src=10.1.0.2 dst=203.0.113.80 sport=5000 dport=53 "
                              "[UNREPLIED] src=203.0.113.80 dst=10.1.0.2 sport=53 dport=5000 "
                              "mark=0 use=1")]


def test_snat_connection_is_not_killed_when_its_route_moves():
    r = nat_router("-A POSTROUTING -o wan0 -j SNAT --to-source 203.0.113.1")
    q = udp(H1, SRV, 5000, 53)
    send(r, LAN_TUN, q)
    r.add_route(StaticRoute(ip_bytes(SRV), 32, ip_bytes("10.1.0.254")))
    assert send(r, LAN_TUN, q) == [(LAN_TUN, hop(q, src=R_WAN))]
    assert r.counters.drops[Drop.NAT_OIF_CHANGED] == 0


def test_port_down_deletes_only_what_was_masqueraded_through_that_port():
    r = nat_router("-A POSTROUTING -o wan0 -p udp --dport 53 -j MASQUERADE",
                   "-A POSTROUTING -o wan0 -p udp --dport 123 -j SNAT --to-source 203.0.113.1",
                   "-A POSTROUTING -o lan0 -j MASQUERADE")
    send(r, LAN_TUN, udp(H1, SRV, 5000, 53))
    send(r, LAN_TUN, udp(H1, SRV2, 5001, 53))
    send(r, LAN_TUN, udp(H1, SRV, 5002, 123))
    send(r, LAN_TUN, echo(H1, SRV))                     # no rule matched: not translated
    send(r, WAN, udp(SRV, H1, 6000, 7))
    assert r.conntrack.count() == 5
    assert r.port_down(WAN, 1.0) == 2
    assert lines(r, 1.0) == [
        ("icmp     1 29 src=10.1.0.2 dst=203.0.113.80 type=8 code=0 id=7 [UNREPLIED] "
         "src=203.0.113.80 dst=10.1.0.2 type=0 code=0 id=7 mark=0 use=1"),
        ("udp      17 29 src=10.1.0.2 dst=203.0.113.80 sport=5002 dport=123 [UNREPLIED] "
         "src=203.0.113.80 dst=203.0.113.1 sport=123 dport=5002 mark=0 use=1"),
        ("udp      17 29 src=203.0.113.80 dst=10.1.0.2 sport=6000 dport=7 [UNREPLIED] "
         "src=10.1.0.2 dst=10.1.0.1 sport=7 dport=6000 mark=0 use=1")]
    assert r.port_down(WAN, 1.0) == 0
    assert r.port_down(LAN_TUN, 1.0) == 1
    assert r.conntrack.count() == 2


# -- hairpin ----------------------------------------------------------------------

HAIRPIN_DNAT = "-A PREROUTING -d 203.0.113.1 -p tcp --dport 80 -j DNAT --to-destination 10.1.0.2"


def test_hairpin_without_snat_keeps_the_clients_source():
    r = nat_router(HAIRPIN_DNAT)
    syn = tcp(H3, R_WAN, 40000, 80)
    # Out the port it came in by, to the server, from the client itself: the
    # server would answer the client directly, bypassing the router.
    assert send(r, LAN_TUN, syn) == [(LAN_TUN, hop(syn, dst=H1))]
    assert lines(r) == [("tcp      6 120 SYN_SENT src=10.1.0.3 dst=203.0.113.1 sport=40000 "
                         "dport=80 [UNREPLIED] src=10.1.0.2 dst=10.1.0.3 sport=80 dport=40000 "
                         "mark=0 use=1")]


def test_hairpin_with_masquerade_comes_back_through_the_router():
    r = nat_router(HAIRPIN_DNAT,
                   "-A POSTROUTING -s 10.1.0.0/24 -d 10.1.0.2 -p tcp --dport 80 -j MASQUERADE")
    syn = tcp(H3, R_WAN, 40000, 80)
    assert send(r, LAN_TUN, syn) == [(LAN_TUN, hop(syn, src=R_LAN, dst=H1))]
    assert lines(r) == [("tcp      6 120 SYN_SENT src=10.1.0.3 dst=203.0.113.1 sport=40000 "
                         "dport=80 [UNREPLIED] src=10.1.0.2 dst=10.1.0.1 sport=80 dport=40000 "
                         "mark=0 use=1")]
    synack = tcp(H1, R_LAN, 80, 40000, "SA", seq=5000, ack=1001)
    # The server answered the router; the client hears the public address:port.
    assert send(r, LAN_TUN, synack) == [(LAN_TUN, hop(synack, src=R_WAN, dst=H3))]
    ack = tcp(H3, R_WAN, 40000, 80, "A", seq=1001, ack=5001)
    assert send(r, LAN_TUN, ack) == [(LAN_TUN, hop(ack, src=R_LAN, dst=H1))]
    assert lines(r) == [("tcp      6 432000 ESTABLISHED src=10.1.0.3 dst=203.0.113.1 sport=40000 "
                         "dport=80 src=10.1.0.2 dst=10.1.0.1 sport=80 dport=40000 [ASSURED] "
                         "mark=0 use=1")]
    # Outside clients still reach the server with their own address.
    syn = tcp(FAR, R_WAN, 41000, 80)
    assert send(r, WAN, syn) == [(LAN_TUN, hop(syn, dst=H1))]


# -- fragments ----------------------------------------------------------------------

def reassembled(out, port: int, src: str, dst: str, ident: int) -> bytes:
    """The IP payload carried by the fragments in out, all sent on port with these fields."""
    assert len(out) > 1 and {p for p, _ in out} == {port}
    pieces = sorted((IP(b) for _, b in out), key=lambda p: p.frag)
    assert all((p.src, p.dst, p.id) == (src, dst, ident) for p in pieces)
    for p in pieces:
        fresh = p.copy()
        del fresh.chksum
        assert raw(fresh)[:20] == raw(p)[:20]
    return b"".join(raw(p.payload) for p in pieces)


def test_translated_then_fragmented_and_reassembled_then_translated():
    r = nat_router(MASQ, mtu_wan=576)
    q = udp(H1, SRV, 5000, 53, bytes(range(256)) * 4, id=4242)
    # The UDP datagram, checksum included, as translated; in pieces that fit wan0.
    assert reassembled(send(r, LAN_TUN, q), WAN, R_WAN, SRV, 4242) == hop(q, src=R_WAN)[20:]
    # A fragmented reply is reassembled, translated back, and leaves in
    # pieces no larger than it came in.
    a = udp(SRV, R_WAN, 53, 5000, bytes(1200), id=99)
    got = []
    for f in fragment(a, fragsize=512):
        got += send(r, WAN, f, 0.1)
    assert reassembled(got, LAN_TUN, SRV, H1, 99) == hop(a, dst=H1)[20:]
