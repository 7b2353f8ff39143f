"""The core's packet path driven with crafted frames: forwarding, ICMP, ARP, drops."""
import pytest
from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, Raw, fragment, raw

from packets import (H1, H2, H2_MAC, LAN_TAP, LAN_TUN, R_LAN, R_TAP, R_WAN, ROUTER_MAC, SRV, WAN,
                     arp_reply_from, eth_to_router, frame, icmp_echo, ip_bytes, make_router,
                     parse_eth, parse_out, tcp4, udp4)
from tunrouter.core import neigh
from tunrouter.core.router import StaticRoute
from tunrouter.core.verdict import Drop
from tunrouter.wire.checksum import csum, csum_ok
from tunrouter.wire.fragment import fragment as split


def only(out):
    assert len(out) == 1, out
    return out[0]


def learn_h2(router, now=0.0):
    """Make H2 a known neighbour on the TAP port."""
    router.process(LAN_TAP, arp_reply_from(H2, H2_MAC), now)


# -- forwarding ---------------------------------------------------------------

def test_forward_tun_to_tun_decrements_ttl_with_valid_checksum():
    r = make_router()
    port, out = only(r.process(LAN_TUN, icmp_echo(H1, SRV, ttl=64), 0.0))
    assert port == WAN
    pkt = parse_out(out)
    assert (pkt.src, pkt.dst, pkt.ttl) == (H1, SRV, 63)
    assert csum_ok(bytes(out)[:20])
    assert r.counters.forwarded == 1


def test_forward_to_tap_frames_for_the_known_neighbour():
    r = make_router()
    learn_h2(r)
    port, out = only(r.process(WAN, udp4(SRV, H2, 53, 4000), 1.0))
    eth = parse_eth(out)
    assert port == LAN_TAP
    assert (eth.dst, eth.src, eth.type) == (H2_MAC, ":".join("%02x" % b for b in ROUTER_MAC), 0x0800)
    assert (eth[IP].dst, eth[IP].ttl) == (H2, 63)


def test_forward_from_tap_strips_ethernet():
    r = make_router()
    port, out = only(r.process(LAN_TAP, eth_to_router(IP(src=H2, dst=SRV) / UDP(dport=9)), 0.0))
    assert port == WAN
    assert parse_out(out)[UDP].dport == 9


def test_static_route_via_gateway():
    r = make_router(routes=[("198.51.100.0", 24, "203.0.113.254", None)])
    port, out = only(r.process(LAN_TUN, icmp_echo(H1, "198.51.100.7"), 0.0))
    assert (port, parse_out(out).dst) == (WAN, "198.51.100.7")


def test_a_new_route_takes_effect_for_destinations_already_forwarded():
    r = make_router()
    assert r.process(LAN_TUN, icmp_echo(H1, "198.51.100.7"), 0.0)[0][0] == LAN_TUN   # net unreachable
    r.add_route(StaticRoute(ip_bytes("198.51.100.0"), 24, ip_bytes("203.0.113.254")))
    assert r.process(LAN_TUN, icmp_echo(H1, "198.51.100.7"), 0.0)[0][0] == WAN
    r.add_route(StaticRoute(ip_bytes("198.51.100.0"), 25, None, LAN_TUN))
    assert r.process(LAN_TUN, icmp_echo(H1, "198.51.100.7"), 0.0)[0][0] == LAN_TUN


def test_cached_destination_still_rejects_martian_source_and_l2_broadcast():
    r = make_router()
    r.process(LAN_TUN, icmp_echo(H1, SRV), 0.0)                      # SRV is now cached
    assert r.process(LAN_TUN, icmp_echo("127.0.0.1", SRV), 0.0) == []
    f = eth_to_router(IP(src=H2, dst=SRV) / UDP(), dst_mac="ff:ff:ff:ff:ff:ff")
    assert r.process(LAN_TAP, f, 0.0) == []
    assert (r.counters.drops[Drop.MARTIAN], r.counters.drops[Drop.L2_BROADCAST]) == (1, 1)


def test_static_route_gateway_must_be_connected():
    with pytest.raises(ValueError, match="not on a connected network"):
        make_router(routes=[("198.51.100.0", 24, "192.0.2.1", None)])


# -- ICMP errors ---------------------------------------------------------------

def test_ttl_expiry_answers_time_exceeded_quoting_the_packet():
    r = make_router()
    sent = icmp_echo(H1, SRV, ttl=1, data=b"x" * 600)
    port, out = only(r.process(LAN_TUN, sent, 0.0))
    err = parse_out(out)
    assert port == LAN_TUN
    assert (err.src, err.dst, err[ICMP].type, err[ICMP].code) == (R_LAN, H1, 11, 0)
    assert err.tos == 0xC0
    assert len(out) == 576                                  # RFC 1812 §4.3.2.3 limit
    assert bytes(out)[28:] == bytes(sent)[:548]             # original TTL 1, header intact
    assert r.counters.drops[Drop.TTL_EXCEEDED] == 1


def test_no_route_answers_net_unreachable():
    r = make_router()
    port, out = only(r.process(LAN_TUN, icmp_echo(H1, "192.0.2.9"), 0.0))
    err = parse_out(out)
    assert (port, err[ICMP].type, err[ICMP].code) == (LAN_TUN, 3, 0)
    assert r.counters.drops[Drop.NO_ROUTE] == 1


def test_df_packet_over_mtu_gets_frag_needed_with_next_hop_mtu():
    r = make_router(mtu_wan=1280)
    port, out = only(r.process(LAN_TUN, udp4(H1, SRV, 1, 2, b"x" * 1400, flags="DF"), 0.0))
    err = parse_out(out)
    assert (err[ICMP].type, err[ICMP].code, err[ICMP].nexthopmtu) == (3, 4, 1280)
    assert r.counters.drops[Drop.FRAG_NEEDED] == 1


def test_packet_over_mtu_without_df_is_fragmented():
    r = make_router(mtu_wan=576)
    out = r.process(LAN_TUN, udp4(H1, SRV, 1, 2, bytes(range(256)) * 5), 0.0)
    assert [p for p, _ in out] == [WAN] * 3
    pieces = [parse_out(f) for _, f in out]
    assert all(len(f) <= 576 for _, f in out)
    assert all(p.ttl == 63 for p in pieces)
    data = b"".join(bytes(p.payload) for p in pieces)
    assert data[8:] == bytes(range(256)) * 5


def test_no_error_about_an_icmp_error():
    r = make_router()
    err = frame(IP(src=H1, dst=SRV, ttl=1) / ICMP(type=3, code=1) / IP(src=SRV, dst=H1) / UDP())
    assert r.process(LAN_TUN, err, 0.0) == []
    assert r.counters.icmp_sent == 0
    assert r.counters.drops[Drop.TTL_EXCEEDED] == 1


def test_no_error_about_a_non_first_fragment():
    r = make_router()
    assert r.process(LAN_TUN, frame(IP(src=H1, dst=SRV, ttl=1, frag=10) / Raw(b"x" * 16)), 0.0) == []
    assert r.counters.icmp_sent == 0


def test_icmp_errors_are_rate_limited_per_destination():
    r = make_router()
    answered = sum(bool(r.process(LAN_TUN, icmp_echo(H1, SRV, ttl=1), 0.0)) for _ in range(10))
    assert answered == 6                                   # XRLIM_BURST_FACTOR
    assert r.counters.icmp_ratelimited == 4
    assert r.process(LAN_TUN, icmp_echo(H1, SRV, ttl=1), 1.0)   # one token a second


def test_frag_needed_is_never_rate_limited():
    r = make_router(mtu_wan=1280)
    big = lambda: udp4(H1, SRV, 1, 2, b"x" * 1400, flags="DF")  # noqa: E731
    assert all(r.process(LAN_TUN, big(), 0.0) for _ in range(20))


# -- the router's own addresses ----------------------------------------------------

@pytest.mark.parametrize("target", [R_LAN, R_WAN])
def test_echo_reply_from_any_router_address(target):
    r = make_router()
    port, out = only(r.process(LAN_TUN, icmp_echo(H1, target, ident=77, seq=5, data=b"abc"), 0.0))
    rep = parse_out(out)
    assert (port, rep.src, rep.dst) == (LAN_TUN, target, H1)
    assert (rep[ICMP].type, rep[ICMP].id, rep[ICMP].seq, bytes(rep[ICMP].payload)) == (0, 77, 5, b"abc")
    assert csum(bytes(out)[20:]) == 0                      # ICMP checksum valid


def test_udp_to_router_gets_port_unreachable():
    r = make_router()
    _, out = only(r.process(LAN_TUN, udp4(H1, R_LAN, 5000, 53), 0.0))
    err = parse_out(out)
    assert (err.src, err[ICMP].type, err[ICMP].code) == (R_LAN, 3, 3)


def test_tcp_syn_to_router_gets_rst_ack():
    r = make_router()
    _, out = only(r.process(LAN_TUN, tcp4(H1, R_LAN, 40000, 22, "S", seq=100), 0.0))
    rst = parse_out(out)
    assert (rst[TCP].sport, rst[TCP].dport, str(rst[TCP].flags), rst[TCP].ack) == (22, 40000, "RA", 101)
    check = IP(raw(IP(src=R_LAN, dst=H1) / TCP(sport=22, dport=40000, flags="RA", seq=0, ack=101, window=0)))
    assert rst[TCP].chksum == check[TCP].chksum


def test_other_protocol_to_router_gets_protocol_unreachable():
    r = make_router()
    _, out = only(r.process(LAN_TUN, frame(IP(src=H1, dst=R_LAN, proto=47) / Raw(b"gre!")), 0.0))
    assert (parse_out(out)[ICMP].type, parse_out(out)[ICMP].code) == (3, 2)


def fragments_of(pkt, size):
    return [frame(f) for f in fragment(pkt, fragsize=size)]


def test_fragmented_echo_to_router_is_reassembled_and_answered():
    r = make_router()
    pieces = fragments_of(IP(src=H1, dst=R_LAN, id=5) / ICMP(id=1, seq=1) / Raw(b"z" * 3000), 1000)
    outs = [r.process(LAN_TUN, f, 0.0) for f in pieces]
    assert outs[:-1] == [[]] * (len(pieces) - 1)
    # the reply (3028 bytes) leaves in pieces that fit the 1500-byte link
    reply = b"".join(bytes(parse_out(f).payload) for _, f in outs[-1])
    assert [len(f) <= 1500 for _, f in outs[-1]] == [True, True, True]
    assert ICMP(reply).type == 0 and bytes(ICMP(reply).payload) == b"z" * 3000


def test_forwarded_fragments_leave_no_larger_than_they_came():
    r = make_router()
    pkt = IP(src=H1, dst=SRV, id=9) / ICMP() / Raw(bytes(range(256)) * 16)
    pieces = fragments_of(pkt, 600)
    out = [o for f in pieces for o in r.process(LAN_TUN, f, 0.0)]
    assert all(port == WAN for port, _ in out)
    largest_in = max(len(f) for f in pieces)
    assert max(len(f) for _, f in out) <= largest_in
    data = b"".join(bytes(parse_out(f).payload) for _, f in sorted(out, key=lambda o: parse_out(o[1]).frag))
    assert data == raw(pkt)[20:]
    assert all(parse_out(f).ttl == 63 for _, f in out)


def test_reassembled_df_datagram_wider_than_the_link_gets_frag_needed():
    r = make_router(mtu_wan=1280)
    pkt = IP(src=H1, dst=SRV, id=3, flags="DF") / UDP() / Raw(b"q" * 2500)
    pieces = [memoryview(bytearray(p)) for p in split(raw(pkt), 1400)]   # DF on every piece
    out = [o for f in pieces for o in r.process(LAN_TUN, f, 0.0)]
    err = parse_out(only(out)[1])
    assert (err[ICMP].type, err[ICMP].code, err[ICMP].nexthopmtu) == (3, 4, 1280)


def test_overlapping_fragments_drop_the_datagram():
    r = make_router()
    a = frame(IP(src=H1, dst=SRV, id=4, flags="MF", frag=0, proto=17) / Raw(b"a" * 24))
    b = frame(IP(src=H1, dst=SRV, id=4, frag=2, proto=17) / Raw(b"b" * 24))
    assert r.process(LAN_TUN, a, 0.0) == [] and r.process(LAN_TUN, b, 0.0) == []
    assert r.counters.drops[Drop.FRAG_OVERLAP] == 1


def test_reassembly_timeout_answers_only_for_the_routers_own_address():
    r = make_router()
    r.process(LAN_TUN, frame(IP(src=H1, dst=R_LAN, id=1, flags="MF") / Raw(b"x" * 64)), 0.0)
    r.process(LAN_TUN, frame(IP(src=H1, dst=SRV, id=2, flags="MF") / Raw(b"y" * 64)), 0.0)
    assert r.next_deadline() == 30.0
    port, out = only(r.tick(30.0))
    err = parse_out(out)
    assert (port, err.src, err.dst, err[ICMP].type, err[ICMP].code) == (LAN_TUN, R_LAN, H1, 11, 1)
    assert r.next_deadline() == float("inf")


# -- what is never forwarded ------------------------------------------------------

@pytest.mark.parametrize("src, dst", [("0.0.0.0", SRV), ("127.0.0.1", SRV), ("224.0.0.5", SRV),
                                      (H1, "127.0.0.1"), (H1, "0.1.2.3")])
def test_martians_are_dropped(src, dst):
    r = make_router()
    assert r.process(LAN_TUN, icmp_echo(src, dst), 0.0) == []
    assert r.counters.drops[Drop.MARTIAN] == 1


@pytest.mark.parametrize("dst", ["255.255.255.255", "10.2.0.255", "224.0.0.1"])
def test_broadcast_and_multicast_are_not_forwarded(dst):
    r = make_router()
    assert r.process(LAN_TUN, icmp_echo(H1, dst), 0.0) == []
    assert r.counters.drops[Drop.BROADCAST] == 1


def test_ip_in_link_layer_broadcast_is_not_forwarded():
    r = make_router()
    f = eth_to_router(IP(src=H2, dst=SRV) / UDP(), dst_mac="ff:ff:ff:ff:ff:ff")
    assert r.process(LAN_TAP, f, 0.0) == []
    assert r.counters.drops[Drop.L2_BROADCAST] == 1


def test_frame_for_another_station_is_dropped():
    r = make_router()
    assert r.process(LAN_TAP, eth_to_router(IP(src=H2, dst=SRV) / UDP(), dst_mac="02:99:99:99:99:99"), 0.0) == []
    assert r.counters.drops[Drop.OTHER_HOST] == 1


def test_ipv6_frame_is_not_ipv4():
    r = make_router()
    f = frame(Ether(dst="02:00:00:00:00:01", type=0x86DD) / Raw(b"\x60" + b"\0" * 39))
    assert r.process(LAN_TAP, f, 0.0) == []
    assert r.counters.drops[Drop.NOT_IPV4] == 1


@pytest.mark.parametrize("buf, reason", [
    (memoryview(bytearray(b"\x45\x00")), Drop.SHORT),
    (memoryview(bytearray(b"\x60" + b"\0" * 39)), Drop.BAD_VERSION),
])
def test_malformed_packets_are_counted(buf, reason):
    r = make_router()
    assert r.process(LAN_TUN, buf, 0.0) == []
    assert r.counters.drops[reason] == 1


# -- ARP -------------------------------------------------------------------------------

def test_arp_request_for_router_is_answered_and_sender_learned():
    r = make_router()
    req = frame(Ether(src=H2_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=H2_MAC, psrc=H2, pdst=R_TAP))
    port, out = only(r.process(LAN_TAP, req, 0.0))
    rep = parse_eth(out)
    assert (port, rep.dst, rep[ARP].op, rep[ARP].psrc, rep[ARP].hwsrc, rep[ARP].pdst) == \
           (LAN_TAP, H2_MAC, 2, R_TAP, "02:00:00:00:00:01", H2)
    assert [(n.ip, n.state) for n in r.neigh.entries()] == [(ip_bytes(H2), neigh.State.REACHABLE)]


def test_arp_request_for_another_address_is_not_answered():
    r = make_router()
    req = frame(Ether(src=H2_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=H2_MAC, psrc=H2, pdst="10.2.0.77"))
    assert r.process(LAN_TAP, req, 0.0) == []
    assert r.neigh.entries() == []


def test_unknown_next_hop_queues_then_flushes_on_reply():
    r = make_router()
    port, out = only(r.process(WAN, udp4(SRV, H2, 1, 2, b"first"), 0.0))
    req = parse_eth(out)
    assert (port, req.dst, req[ARP].op, req[ARP].pdst, req[ARP].psrc) == \
           (LAN_TAP, "ff:ff:ff:ff:ff:ff", 1, H2, R_TAP)
    assert r.process(WAN, udp4(SRV, H2, 1, 2, b"second"), 0.1) == []
    flushed = r.process(LAN_TAP, arp_reply_from(H2, H2_MAC), 0.2)
    assert [bytes(parse_eth(f)[UDP].payload) for _, f in flushed] == [b"first", b"second"]


def test_arp_retries_then_host_unreachable_for_the_queue():
    r = make_router()
    r.process(WAN, udp4(SRV, H2, 1, 2), 0.0)
    requests = 1
    now = 0.0
    errors = []
    while now < 10:
        now = r.next_deadline()
        for port, f in r.tick(now):
            if port == LAN_TAP:
                requests += 1
            else:
                errors.append(parse_out(f))
        if errors:
            break
    assert requests == neigh.MCAST_SOLICIT
    assert [(e.dst, e[ICMP].type, e[ICMP].code) for e in errors] == [(SRV, 3, 1)]
    assert r.counters.drops[Drop.NEIGH_FAILED] == 1


def test_neighbour_queue_is_bounded():
    r = make_router()
    for _ in range(neigh.QUEUE_MAX + 5):
        r.process(WAN, udp4(SRV, H2, 1, 2), 0.0)
    assert r.counters.drops[Drop.NEIGH_QUEUE_FULL] == 5


def test_stale_neighbour_is_used_and_reprobed_with_unicast():
    r = make_router()
    learn_h2(r, 0.0)
    out = r.process(WAN, udp4(SRV, H2, 1, 2), neigh.REACHABLE_TIME + 1)
    kinds = [parse_eth(f) for _, f in out]
    assert kinds[0][ARP].op == 1 and kinds[0].dst == H2_MAC      # unicast probe
    assert kinds[1][UDP].dport == 2                              # the packet still goes


def test_unused_stale_neighbour_is_forgotten():
    r = make_router()
    learn_h2(r, 0.0)
    now = 0.0
    while r.neigh.entries() and now < 1000:
        now = r.next_deadline()
        r.tick(now)
    assert r.neigh.entries() == []
    assert now == pytest.approx(neigh.GC_STALE_TIME)          # unused since it was learned


def test_port_down_forgets_its_routes_and_address():
    """A deleted device: what went out of it is unreachable now, the other ports go on."""
    r = make_router(routes=[("198.51.100.0", 24, "203.0.113.254", None)])
    r.process(LAN_TUN, udp4(H1, SRV, 5000, 53), 0.0)
    assert r.port_down(WAN, 0.1) == 0
    out = r.process(LAN_TUN, udp4(H1, "198.51.100.7", 5000, 53), 0.2)
    assert parse_out(out[0][1])[ICMP].type == 3 and parse_out(out[0][1])[ICMP].code == 0
    assert r.counters.drops[Drop.NO_ROUTE] == 1
    # the port's own address is no longer the router's: no echo reply, no route to it
    (port, frame), = r.process(LAN_TUN, icmp_echo(H1, R_WAN), 0.3)
    assert port == LAN_TUN and parse_out(frame)[ICMP].type == 3
    assert parse_out(r.process(LAN_TUN, icmp_echo(H1, R_LAN, ident=8), 0.4)[0][1])[ICMP].type == 0
