"""Port and ICMP id allocation (get_unique_tuple, nf_nat_l4proto_unique_tuple).

Through the router where the rules matter, on a bare ConnTable and Binder
where the search itself is examined; the search offsets come from a seeded
generator (draws() replays it) or from a list given in advance (Offsets).
"""
from nat_packets import H3, SRV2, draws, echo, hop, lines, nat_router, send, tcp, udp
from packets import H1, LAN_TUN, R_WAN, SRV, WAN, ip_bytes
from scapy.all import IP, UDP

from tunrouter.conntrack.conn import IPS_DST_NAT, IPS_SRC_NAT, Conn
from tunrouter.conntrack.table import ConnTable
from tunrouter.conntrack.tuple import invert
from tunrouter.core.verdict import Drop
from tunrouter.nat.binding import Binder
from tunrouter.nat.range import (
    DST,
    MAP_IPS,
    PROTO_RANDOM,
    PROTO_SPECIFIED,
    SRC,
    NatRange,
)

MASQ = "-A POSTROUTING -o wan0 -j MASQUERADE"
UDP_P = 17
NAT_IP = ip_bytes(R_WAN)
NAT_INT = int.from_bytes(NAT_IP, "big")
SRV_B = ip_bytes(SRV)


class Offsets:
    """A generator whose get_random_u16() returns these values, in turn, and no more."""

    def __init__(self, *values: int):
        self.values = list(values)

    def getrandbits(self, bits: int) -> int:
        assert bits == 16
        return self.values.pop(0)


def table_with(*ports: int, now: float = 0.0) -> ConnTable:
    """A table where masqueraded entries hold NAT_IP:port <-> SRV:53 (UDP) for each port."""
    table = ConnTable()
    for port in ports:
        inside = bytes([10, 9, port >> 8, port & 0xFF])
        ct = Conn((inside, SRV_B, UDP_P, 40000, 53), (SRV_B, NAT_IP, UDP_P, 53, port))
        ct.status = IPS_SRC_NAT
        ct.deadline = now + 100
        assert table.confirm(ct, now)
    return table


def new_conn(sport: int, src: str = H1, dst: str = SRV, dport: int = 53) -> Conn:
    orig = (ip_bytes(src), ip_bytes(dst), UDP_P, sport, dport)
    ct = Conn(orig, invert(orig))
    ct.deadline = 30.0
    return ct


def masq_range(lo: int = 0, hi: int = 0, flags: int = 0) -> NatRange:
    if lo:
        flags |= PROTO_SPECIFIED
    return NatRange(MAP_IPS | flags, NAT_INT, NAT_INT, lo, hi)


# -- the original port, and where a clashing one goes --------------------------------

def test_original_port_kept_when_unique():
    table = table_with(5001)
    ct = new_conn(5000)
    assert Binder(table, Offsets()).setup(ct, masq_range(), SRC, 0.0)
    assert ct.reply == (SRV_B, NAT_IP, UDP_P, 53, 5000)
    assert ct.status & IPS_SRC_NAT


def test_clashing_port_keeps_its_class_as_the_kernel_does():
    for sport, lo, size in [(1, 1, 511), (511, 1, 511), (512, 600, 424), (599, 600, 424),
                            (1023, 600, 424), (1024, 1024, 64512), (65535, 1024, 64512)]:
        table = table_with(sport)
        ct = new_conn(sport)
        assert Binder(table, Offsets(1000)).setup(ct, masq_range(), SRC, 0.0)
        assert ct.reply[4] == lo + 1000 % size, sport


def test_search_offset_wraps_as_a_u16():
    # off = 65535 -> 1024 + 65535 % 64512 = 2047 (taken); the kernel's u16
    # offset then wraps to 0: 1024, not 2048.
    table = table_with(5000, 2047)
    ct = new_conn(5000)
    assert Binder(table, Offsets(65535)).setup(ct, masq_range(), SRC, 0.0)
    assert ct.reply[4] == 1024


def test_search_halves_its_window_from_new_offsets_then_gives_up():
    taken = range(1000, 1199)                   # of 1000-1199 only 1199 is free
    # Windows of 128, 64, 32, 16 and 8 candidates, each from a new offset:
    # the fifth (195: 1195-1199, 1000-1002) finds it.
    ct = new_conn(5000)
    offsets = Offsets(0, 0, 0, 0, 195)
    assert Binder(table_with(*taken), offsets).setup(ct, masq_range(1000, 1199), SRC, 0.0)
    assert ct.reply[4] == 1199
    assert offsets.values == []
    # From offset 0 each time the free port is never tried: after the
    # 8-wide window the search stops (no sixth offset is drawn).
    table = table_with(*taken)
    ct = new_conn(5000)
    assert not Binder(table, Offsets(0, 0, 0, 0, 0)).setup(ct, masq_range(1000, 1199), SRC, 0.0)
    assert (table.stats.insert_failed, table.stats.drop) == (1, 1)


def test_small_range_is_searched_whole_from_one_offset():
    ct = new_conn(5000)
    offsets = Offsets(2)
    assert Binder(table_with(1002, 1003), offsets).setup(ct, masq_range(1000, 1003), SRC, 0.0)
    assert ct.reply[4] == 1000
    ct = new_conn(5001)
    table = table_with(1000, 1001, 1002, 1003)
    assert not Binder(table, Offsets(2)).setup(ct, masq_range(1000, 1003), SRC, 0.0)


def test_dst_manip_searches_to_ports_from_the_range_start():
    h1 = int.from_bytes(ip_bytes(H1), "big")
    r = NatRange(MAP_IPS | PROTO_SPECIFIED, h1, h1, 8000, 8009)

    def dnat(*clients):
        """DNAT SRV:6000 -> R_WAN:53 to H1:8000-8009 where these hold H1:8000 <-> client:6000."""
        table = ConnTable()
        for client in clients:
            held = Conn((ip_bytes(client), NAT_IP, UDP_P, 6000, 53),
                        (ip_bytes(H1), ip_bytes(client), UDP_P, 8000, 6000))
            held.deadline = 100
            assert table.confirm(held, 0.0)
        ct = new_conn(6000, src=SRV, dst=R_WAN)
        # No random offset is drawn (Offsets() has none): the search starts at 8000.
        assert Binder(table, Offsets()).setup(ct, r, DST, 0.0)
        assert ct.status & IPS_DST_NAT
        return ct.reply
    # Held for another client only: 8000 is free for this one.
    assert dnat(SRV2) == (ip_bytes(H1), SRV_B, UDP_P, 8000, 6000)
    # Held for this client: the next one.
    assert dnat(SRV2, SRV) == (ip_bytes(H1), SRV_B, UDP_P, 8001, 6000)


def test_dst_manip_keeps_a_taken_tuple_for_the_src_manip_to_resolve():
    # An entry already answers H1:80 -> SRV:40000 (a DNAT from another public port).
    table = ConnTable()
    other = Conn((SRV_B, NAT_IP, UDP_P, 40000, 8080), (ip_bytes(H1), SRV_B, UDP_P, 80, 40000))
    other.status = IPS_DST_NAT
    other.deadline = 100
    table.confirm(other, 0.0)
    h1 = int.from_bytes(ip_bytes(H1), "big")
    ct = new_conn(40000, src=SRV, dst=R_WAN, dport=8081)
    binder = Binder(table, Offsets(7))
    # As nf_nat_setup_info: the DNAT is made although its tuple is taken...
    assert binder.setup(ct, NatRange(MAP_IPS | PROTO_SPECIFIED, h1, h1, 80, 80), DST, 0.0)
    assert ct.reply == (ip_bytes(H1), SRV_B, UDP_P, 80, 40000)
    assert table.stats.insert_failed == 0
    # ... and the source manip after it (here the null binding) moves the source port.
    assert binder.null_binding(ct, SRC, 0.0)
    assert ct.reply == (ip_bytes(H1), SRV_B, UDP_P, 80, 1024 + 7)
    assert ct.status & IPS_SRC_NAT and ct.status & IPS_DST_NAT
    assert table.confirm(ct, 0.0)


def test_src_manip_with_random_skips_the_free_original_port():
    ct = new_conn(5000)
    assert Binder(ConnTable(), Offsets(9)).setup(ct, masq_range(flags=PROTO_RANDOM), SRC, 0.0)
    assert ct.reply[4] == 1024 + 9


# -- through the router ---------------------------------------------------------------

def test_two_lan_hosts_same_port_same_server_second_is_remapped():
    r = nat_router(MASQ)
    q1, q3 = udp(H1, SRV, 5000, 53), udp(H3, SRV, 5000, 53)
    port = 1024 + draws(1)[0] % 64512
    assert send(r, LAN_TUN, q1) == [(WAN, hop(q1, src=R_WAN))]
    assert send(r, LAN_TUN, q3) == [(WAN, hop(q3, src=R_WAN, sport=port))]
    assert lines(r) == [
        ("udp      17 30 src=10.1.0.2 dst=203.0.113.80 sport=5000 dport=53 [UNREPLIED] "
         "src=203.0.113.80 dst=203.0.113.1 sport=53 dport=5000 mark=0 use=1"),
        (f"udp      17 30 src=10.1.0.3 dst=203.0.113.80 sport=5000 dport=53 [UNREPLIED] "
         f"src=203.0.113.80 dst=203.0.113.1 sport=53 dport={port} mark=0 use=1")]
    a1, a3 = udp(SRV, R_WAN, 53, 5000), udp(SRV, R_WAN, 53, port)
    assert send(r, WAN, a3) == [(LAN_TUN, hop(a3, dst=H3, dport=5000))]
    assert send(r, WAN, a1) == [(LAN_TUN, hop(a1, dst=H1))]


def test_low_ports_are_remapped_within_their_class():
    r = nat_router(MASQ)
    d = draws(2)
    for sport, expected in ((500, 1 + d[0] % 511), (700, 600 + d[1] % 424)):
        send(r, LAN_TUN, udp(H1, SRV, sport, 53))
        q = udp(H3, SRV, sport, 53)
        assert send(r, LAN_TUN, q) == [(WAN, hop(q, src=R_WAN, sport=expected))]


def test_the_same_port_to_another_server_is_not_a_clash():
    r = nat_router(MASQ)
    send(r, LAN_TUN, udp(H1, SRV, 5000, 53))
    for q in (udp(H3, SRV2, 5000, 53), udp(H3, SRV, 5000, 54)):
        assert send(r, LAN_TUN, q) == [(WAN, hop(q, src=R_WAN))]


def test_one_port_range_taken_drops_the_packet():
    r = nat_router("-A POSTROUTING -o wan0 -p udp -j MASQUERADE --to-ports 1000")
    q = udp(H1, SRV, 5000, 53)
    assert send(r, LAN_TUN, q) == [(WAN, hop(q, src=R_WAN, sport=1000))]
    # Another flow to the same server: its port is out of the range, the one
    # port in it is taken; likewise a flow whose own port is that one.
    assert send(r, LAN_TUN, udp(H1, SRV, 5001, 53)) == []
    assert send(r, LAN_TUN, udp(H3, SRV, 1000, 53)) == []
    assert r.counters.drops[Drop.NAT_EXHAUSTED] == 2
    assert (r.conntrack.stats.insert_failed, r.conntrack.stats.drop) == (2, 2)
    assert r.conntrack.count() == 1
    # Towards another server the port is free.
    q = udp(H1, SRV2, 5001, 53)
    assert send(r, LAN_TUN, q) == [(WAN, hop(q, src=R_WAN, sport=1000))]


def test_small_range_exhausted_then_freed_by_expiry():
    r = nat_router("-A POSTROUTING -o wan0 -p udp -j MASQUERADE --to-ports 1000-1003")
    ports = []
    for i in range(4):
        ((_, out),) = send(r, LAN_TUN, udp(H1, SRV, 5000 + i, 53))
        ports.append(IP(out)[UDP].sport)
    assert sorted(ports) == [1000, 1001, 1002, 1003]
    assert send(r, LAN_TUN, udp(H1, SRV, 5004, 53), 1.0) == []
    assert r.counters.drops[Drop.NAT_EXHAUSTED] == 1
    assert (r.conntrack.stats.insert_failed, r.conntrack.stats.drop) == (1, 1)
    # Keep all but the first flow alive; once the first expires its port is free again.
    for i in range(1, 4):
        send(r, LAN_TUN, udp(H1, SRV, 5000 + i, 53), 20.0)
    r.tick(31.0)
    q = udp(H1, SRV, 5004, 53)
    assert send(r, LAN_TUN, q, 31.0) == [(WAN, hop(q, src=R_WAN, sport=ports[0]))]


def test_many_flows_never_share_a_reply_tuple():
    r = nat_router(MASQ)
    hosts = [H1, H3, "10.1.0.4"]
    for host in hosts:
        for sport in range(40000, 40150):
            assert send(r, LAN_TUN, tcp(host, SRV, sport, 80))
    conns = r.conntrack.conns(0.0)
    assert len(conns) == 450
    assert len({ct.reply for ct in conns}) == 450
    # The first host kept its ports, the others' clashed and moved (within 1024-65535).
    for ct in conns:
        assert (ct.reply[4] == ct.orig[3]) is (ct.orig[0] == ip_bytes(H1))
        assert 1024 <= ct.reply[4] <= 65535
    # Every reply reaches the right host and port.
    for ct in conns:
        synack = tcp(SRV, R_WAN, 80, ct.reply[4], "SA", seq=1, ack=1001)
        ((_, out),) = send(r, WAN, synack)
        p = IP(out)
        assert (p.dst, p.dport) == (".".join(map(str, ct.orig[0])), ct.orig[3])


def test_a_port_range_fills_exactly():
    r = nat_router("-A POSTROUTING -o wan0 -p tcp -j MASQUERADE --to-ports 2000-2099")
    for i in range(100):
        assert send(r, LAN_TUN, tcp(H1 if i % 2 else H3, SRV, 40000 + i // 2, 80))
    assert sorted(ct.reply[4] for ct in r.conntrack.conns(0.0)) == list(range(2000, 2100))
    assert send(r, LAN_TUN, tcp(H1, SRV, 41000, 80)) == []
    assert r.counters.drops[Drop.NAT_EXHAUSTED] == 1


def test_icmp_echo_ids_remapped_like_ports():
    r = nat_router(MASQ)
    ident = draws(1)[0]
    assert ident != 7
    e1, e3 = echo(H1, SRV, ident=7), echo(H3, SRV, ident=7)
    assert send(r, LAN_TUN, e1) == [(WAN, hop(e1, src=R_WAN))]
    assert send(r, LAN_TUN, e3) == [(WAN, hop(e3, src=R_WAN, id=ident))]
    assert lines(r)[1] == (f"icmp     1 30 src=10.1.0.3 dst=203.0.113.80 type=8 code=0 id=7 "
                           f"[UNREPLIED] src=203.0.113.80 dst=203.0.113.1 type=0 code=0 "
                           f"id={ident} mark=0 use=1")
    rep = echo(SRV, R_WAN, ident=ident, reply=True)
    assert send(r, WAN, rep) == [(LAN_TUN, hop(rep, dst=H3, id=7))]


def test_null_binding_moves_a_clashing_source_port():
    # H1 is made to appear as H3: H3's own flow from the same port would then
    # look like H1's to the server.  No rule matches H3, yet its port moves.
    r = nat_router("-A POSTROUTING -s 10.1.0.2 -j SNAT --to-source 10.1.0.3")
    q1, q3 = udp(H1, SRV, 5000, 53), udp(H3, SRV, 5000, 53)
    port = 1024 + draws(1)[0] % 64512
    assert send(r, LAN_TUN, q1) == [(WAN, hop(q1, src=H3))]
    assert send(r, LAN_TUN, q3) == [(WAN, hop(q3, sport=port))]
    assert lines(r)[1] == (f"udp      17 30 src=10.1.0.3 dst=203.0.113.80 sport=5000 dport=53 "
                           f"[UNREPLIED] src=203.0.113.80 dst=10.1.0.3 sport=53 dport={port} "
                           f"mark=0 use=1")
    a = udp(SRV, H3, 53, port)
    assert send(r, WAN, a) == [(LAN_TUN, hop(a, dport=5000))]
    a = udp(SRV, H3, 53, 5000)
    assert send(r, WAN, a) == [(LAN_TUN, hop(a, dst=H1))]


def test_two_dnats_to_one_server_from_one_client_socket_both_pass():
    # Both public ports lead to H1:80; the client uses one source port for
    # both.  The second DNAT keeps its (taken) tuple and the null binding at
    # POSTROUTING moves the client's source port, as in Linux.
    r = nat_router("-A PREROUTING -i wan0 -p udp --dport 8080 -j DNAT --to-destination 10.1.0.2:80",
                   "-A PREROUTING -i wan0 -p udp --dport 8081 -j DNAT --to-destination 10.1.0.2:80")
    d = draws(2)
    q1, q2 = udp(SRV, R_WAN, 40000, 8080), udp(SRV, R_WAN, 40000, 8081)
    assert send(r, WAN, q1) == [(LAN_TUN, hop(q1, dst=H1, dport=80))]
    assert send(r, WAN, q2) == [(LAN_TUN, hop(q2, dst=H1, dport=80, sport=1024 + d[0] % 64512))]
    # And so does the client talking to the server directly, from that port.
    q3 = udp(SRV, H1, 40000, 80)
    assert send(r, WAN, q3) == [(LAN_TUN, hop(q3, sport=1024 + d[1] % 64512))]
    assert lines(r) == [
        ("udp      17 30 src=203.0.113.80 dst=10.1.0.2 sport=40000 dport=80 [UNREPLIED] "
         f"src=10.1.0.2 dst=203.0.113.80 sport=80 dport={1024 + d[1] % 64512} mark=0 use=1"),
        ("udp      17 30 src=203.0.113.80 dst=203.0.113.1 sport=40000 dport=8080 [UNREPLIED] "
         "src=10.1.0.2 dst=203.0.113.80 sport=80 dport=40000 mark=0 use=1"),
        ("udp      17 30 src=203.0.113.80 dst=203.0.113.1 sport=40000 dport=8081 [UNREPLIED] "
         f"src=10.1.0.2 dst=203.0.113.80 sport=80 dport={1024 + d[0] % 64512} mark=0 use=1")]
    assert r.counters.drops[Drop.NAT_EXHAUSTED] == 0
    a = udp(H1, SRV, 80, 1024 + d[0] % 64512)
    assert send(r, LAN_TUN, a) == [(WAN, hop(a, src=R_WAN, sport=8081, dport=40000))]


def test_same_inside_socket_keeps_its_outside_port_for_every_server():
    r = nat_router(MASQ)
    port = 1024 + draws(1)[0] % 64512
    send(r, LAN_TUN, udp(H3, SRV, 5000, 53))
    send(r, LAN_TUN, udp(H1, SRV, 5000, 53))            # clashes: remapped to port
    # 5000 would be free towards SRV2, but H1:5000 already appears as port.
    q = udp(H1, SRV2, 5000, 53)
    assert send(r, LAN_TUN, q) == [(WAN, hop(q, src=R_WAN, sport=port))]
    q = udp(H3, SRV2, 5000, 53)
    assert send(r, LAN_TUN, q) == [(WAN, hop(q, src=R_WAN))]


def test_random_fully_does_not_reuse_the_sockets_mapping():
    r = nat_router(f"{MASQ} --random-fully")
    d = draws(2)
    send(r, LAN_TUN, udp(H1, SRV, 5000, 53))
    q = udp(H1, SRV2, 5000, 53)
    assert send(r, LAN_TUN, q) == [(WAN, hop(q, src=R_WAN, sport=1024 + d[1] % 64512))]


def test_same_inside_socket_takes_its_newest_mapping_first():
    # The kernel's bysource chain is newest first (hlist_add_head).
    r = nat_router(MASQ)
    moved = 1024 + draws(1)[0] % 64512
    send(r, LAN_TUN, udp(H3, SRV, 5000, 53))
    send(r, LAN_TUN, udp(H1, SRV, 5000, 53))            # H1:5000 appears as :moved
    send(r, LAN_TUN, udp(H3, SRV2, moved, 53))          # :moved towards SRV2 is H3's now
    q = udp(H1, SRV2, 5000, 53)                         # so H1:5000 appears as :5000 there
    assert send(r, LAN_TUN, q) == [(WAN, hop(q, src=R_WAN))]
    # Towards a third server both mappings are free: the newer one is reused.
    q = udp(H1, "203.0.113.82", 5000, 53)
    assert send(r, LAN_TUN, q) == [(WAN, hop(q, src=R_WAN))]
