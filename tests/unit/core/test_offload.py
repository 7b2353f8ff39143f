"""Offloads through Router.process(): partial checksums and super-segments from a port
opened with a virtio-net header, passed on whole or finished in software.

The topology: lan0 (TUN, offloads), lan1 (TUN, none), wan0 (TUN, offloads,
MTU as given); for the TAP tests lan1 is a TAP port with offloads.  A partial checksum is built here from the pseudo-header, as a
sending stack leaves it; what leaves is checked with Scapy.
"""
import struct

import pytest
from packets import ip_bytes
from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, Raw, raw

from tunrouter.core.hooks import engine_for
from tunrouter.core.port import Kind, PortSpec
from tunrouter.core.router import Router
from tunrouter.core.verdict import Drop

LAN0, LAN1, WAN = 0, 1, 2
H1, H2, SRV = "10.1.0.2", "10.2.0.2", "203.0.113.80"
VNET = struct.Struct("=BBHHHH")
NEEDS_CSUM, DATA_VALID = 1, 2
GSO_TCPV4, GSO_UDP_L4, GSO_ECN = 1, 5, 0x80
NAT_HEAD = ("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            ":POSTROUTING ACCEPT [0:0]\n")


def make(mtu_wan: int = 1500, nat: str | None = None, raw_table: str = "") -> Router:
    r = Router([PortSpec(LAN0, "lan0", Kind.TUN, ip_bytes("10.1.0.1"), 24, offload=True),
                PortSpec(LAN1, "lan1", Kind.TUN, ip_bytes("10.2.0.1"), 24),
                PortSpec(WAN, "wan0", Kind.TUN, ip_bytes("203.0.113.1"), 24, mtu=mtu_wan,
                         offload=True)])
    if nat is not None:
        r.set_rules(engine_for(raw_table + NAT_HEAD + nat + "\nCOMMIT\n"))
    return r


def fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def pseudo_sum(b: bytes) -> int:
    """The pseudo-header sum, not inverted: what a stack leaves in a partial checksum."""
    hlen = (b[0] & 0x0F) << 2
    words = b[12:20] + bytes([0, b[9]]) + (len(b) - hlen).to_bytes(2, "big")
    return fold(sum(struct.unpack("!6H", words)))


def check_at(b: bytes) -> int:
    hlen = (b[0] & 0x0F) << 2
    return hlen + (16 if b[9] == 6 else 6)


def partial(pkt) -> bytes:
    """pkt's bytes with its TCP/UDP checksum left partial."""
    b = bytearray(raw(pkt))
    c = check_at(b)
    b[c:c + 2] = pseudo_sum(b).to_bytes(2, "big")
    return bytes(b)


def offloaded(pkt, gso_type: int = 0, gso_size: int = 0, flags: int = NEEDS_CSUM) -> bytes:
    """A frame as an offloading TUN device hands it over: header, then the packet."""
    b = partial(pkt) if flags & NEEDS_CSUM else raw(pkt)
    hlen = (b[0] & 0x0F) << 2
    hdr_len = hlen + (((b[hlen + 12] >> 4) << 2) if b[9] == 6 else 8)
    return VNET.pack(flags, gso_type, hdr_len, gso_size, hlen, 16 if b[9] == 6 else 6) + b


def send(r: Router, port: int, frame: bytes, now: float = 0.0) -> list:
    return [(p, bytes(f)) for p, f in r.process(port, memoryview(bytearray(frame)), now)]


def split(frame: bytes) -> tuple[tuple, bytes]:
    return VNET.unpack_from(frame), frame[VNET.size:]


def partial_ok(b: bytes) -> bool:
    """The checksum field holds the pseudo-header sum of the packet's own addresses."""
    c = check_at(b)
    return (int.from_bytes(b[c:c + 2], "big") - pseudo_sum(b)) % 0xFFFF == 0


def whole_ok(b: bytes) -> bool:
    """Every checksum as Scapy computes it."""
    p = IP(b)
    del p.chksum
    del p.payload.chksum
    return raw(p) == b


def data_segment(seq: int = 1000, size: int = 4000, flags: str = "PA", src: str = H1,
                 dst: str = SRV, **ip):
    return (IP(src=src, dst=dst, flags="DF", id=100, **ip)
            / TCP(sport=40000, dport=80, flags=flags, seq=seq, ack=1, window=500)
            / Raw(bytes(range(256)) * (size // 256) + b"z" * (size % 256)))


def established(r: Router, src: str = H1, dst: str = SRV, in_port: int = LAN0,
                out_port: int = WAN) -> None:
    """A handshake through r (complete checksums), so data segments are ESTABLISHED."""
    def plain(port, pkt):
        return raw(pkt) if port == LAN1 else VNET.pack(0, 0, 0, 0, 0, 0) + raw(pkt)
    back = "203.0.113.1" if r.rules is not None else src
    syn = IP(src=src, dst=dst) / TCP(sport=40000, dport=80, flags="S", seq=999)
    assert len(send(r, in_port, plain(in_port, syn))) == 1
    synack = IP(src=dst, dst=back) / TCP(sport=80, dport=40000, flags="SA", seq=0, ack=1000)
    assert len(send(r, out_port, plain(out_port, synack))) == 1


# -- passing on whole ---------------------------------------------------------

def test_partial_checksum_passes_whole_between_offloading_ports_with_its_header():
    r = make()
    frame = offloaded(IP(src=H1, dst=SRV) / UDP(sport=5000, dport=53) / Raw(b"q" * 100))
    ((port, out),) = send(r, LAN0, frame)
    assert port == WAN
    hdr, pkt = split(out)
    assert hdr == VNET.unpack_from(frame)
    assert IP(pkt).ttl == 63 and partial_ok(pkt)
    assert r.conntrack.stats.invalid == 0      # a partial checksum is not verified


def test_the_header_is_written_in_place_no_copy():
    r = make()
    buf = bytearray(offloaded(IP(src=H1, dst=SRV) / UDP(sport=5000, dport=53) / Raw(b"q")))
    ((_, out),) = r.process(LAN0, memoryview(buf), 0.0)
    assert out.obj is buf


def test_super_segment_passes_whole_when_a_segment_fits_the_mtu():
    r = make()
    established(r)
    seg = data_segment(size=4000)
    ((port, out),) = send(r, LAN0, offloaded(seg, GSO_TCPV4, 1000))
    hdr, pkt = split(out)
    assert port == WAN and hdr[1:4] == (GSO_TCPV4, 40, 1000) and len(pkt) == len(raw(seg))
    assert partial_ok(pkt)
    c = r.counters
    assert c.rx_packets[LAN0] == 2 + 3 and c.rx_bytes[LAN0] == 40 + 4 * 40 + 4000
    assert c.forwarded == 3          # the handshake, then the super-segment as one


def test_an_invalid_full_checksum_on_a_plain_frame_is_still_invalid():
    r = make()
    bad = bytearray(raw(IP(src=H1, dst=SRV) / UDP(sport=5000, dport=53) / Raw(b"q")))
    bad[26:28] = b"\x12\x34"
    send(r, LAN0, VNET.pack(0, 0, 0, 0, 0, 0) + bytes(bad))
    assert r.conntrack.stats.invalid == 1


def test_data_valid_skips_verification():
    r = make()
    bad = bytearray(raw(IP(src=H1, dst=SRV) / UDP(sport=5000, dport=53) / Raw(b"q")))
    bad[26:28] = b"\x12\x34"
    ((port, _),) = send(r, LAN0, VNET.pack(DATA_VALID, 0, 0, 0, 0, 0) + bytes(bad))
    assert port == WAN and r.conntrack.stats.invalid == 0


# -- finished in software -----------------------------------------------------

def test_partial_checksum_is_finished_for_a_port_without_offloads():
    r = make()
    pkt = IP(src=H1, dst=H2) / UDP(sport=5000, dport=53) / Raw(b"q" * 33)
    ((port, out),) = send(r, LAN0, offloaded(pkt))
    assert port == LAN1 and whole_ok(out) and IP(out).ttl == 63


def test_super_segment_is_cut_for_a_port_without_offloads():
    r = make()
    established(r, dst=H2, out_port=LAN1)
    seg = data_segment(seq=1000, size=2500, flags="FPA", dst=H2, tos=0x02)
    outs = send(r, LAN0, offloaded(seg, GSO_TCPV4 | GSO_ECN, 1000))
    pkts = [IP(b) for _, b in outs]
    assert [p for p, _ in outs] == [LAN1] * 3
    assert all(whole_ok(b) for _, b in outs)
    assert [p[TCP].seq for p in pkts] == [1000, 2000, 3000]
    assert [str(p[TCP].flags) for p in pkts] == ["A", "A", "FPA"]
    assert [p.id for p in pkts] == [100, 101, 102]
    assert [len(p[TCP].payload) for p in pkts] == [1000, 1000, 500]
    assert b"".join(bytes(p[TCP].payload) for p in pkts) == bytes(seg[Raw])
    assert r.counters.tx_packets == [0, 0, 0]       # the driver counts what it writes


def test_cwr_stays_on_the_first_segment_only():
    r = make()
    established(r, dst=H2, out_port=LAN1)
    seg = data_segment(size=2000, flags="PAC", dst=H2)
    outs = send(r, LAN0, offloaded(seg, GSO_TCPV4 | GSO_ECN, 1000))
    assert [str(IP(b)[TCP].flags) for _, b in outs] == ["AC", "PA"]


def test_udp_super_segment_is_cut_into_datagrams():
    r = make()
    pkt = IP(src=H1, dst=H2, id=7) / UDP(sport=5000, dport=9000) / Raw(b"u" * 2500)
    outs = send(r, LAN0, offloaded(pkt, GSO_UDP_L4, 1200))
    assert [len(IP(b)[UDP].payload) for _, b in outs] == [1200, 1200, 100]
    assert [IP(b)[UDP].len for _, b in outs] == [1208, 1208, 108]
    assert all(whole_ok(b) for _, b in outs)


def test_super_segment_too_big_for_the_mtu_with_df_gets_frag_needed():
    r = make(mtu_wan=1000)
    established(r)
    outs = send(r, LAN0, offloaded(data_segment(size=3000), GSO_TCPV4, 1448))
    ((port, out),) = outs
    hdr, pkt = split(out)
    assert port == LAN0 and hdr == (0, 0, 0, 0, 0, 0)
    err = IP(pkt)
    assert err[ICMP].type == 3 and err[ICMP].code == 4 and err[ICMP].nexthopmtu == 1000
    assert r.counters.drops[Drop.FRAG_NEEDED] == 1


def test_super_segment_too_big_for_the_mtu_without_df_is_cut_then_fragmented():
    r = make(mtu_wan=1000)
    established(r)
    seg = data_segment(size=2896)
    seg.flags = 0
    outs = send(r, LAN0, offloaded(seg, GSO_TCPV4, 1448))
    assert all(port == WAN and split(b)[0] == (0, 0, 0, 0, 0, 0) for port, b in outs)
    frags = [IP(split(b)[1]) for _, b in outs]
    assert len(frags) == 4 and all(len(raw(f)) <= 1000 for f in frags)
    assert r.counters.fragments_out == 4


def test_a_generic_partial_checksum_is_finished_on_arrival():
    """csum_start beyond the transport header: not one the core keeps partial."""
    r = make()
    pkt = IP(src=H1, dst=SRV) / UDP(sport=5000, dport=53, chksum=0) / Raw(b"\0\0" + b"d" * 20)
    b = bytearray(raw(pkt))
    frame = VNET.pack(NEEDS_CSUM, 0, 0, 0, 28, 0) + bytes(b)
    ((_, out),) = send(r, LAN0, frame)
    hdr, out_pkt = split(out)
    assert hdr[0] == 0
    assert int.from_bytes(out_pkt[28:], "big") % 0xFFFF == 0     # the data sums to 0xFFFF


# -- NAT on partial checksums -------------------------------------------------

def test_masquerade_updates_the_partial_checksum_first_packet_and_established():
    r = make(nat="-A POSTROUTING -o wan0 -j MASQUERADE")
    syn = IP(src=H1, dst=SRV) / TCP(sport=40000, dport=80, flags="S", seq=999)
    ((_, out),) = send(r, LAN0, offloaded(syn))
    _, pkt = split(out)
    assert IP(pkt).src == "203.0.113.1" and partial_ok(pkt)
    synack = IP(src=SRV, dst="203.0.113.1") / TCP(sport=80, dport=40000, flags="SA", ack=1000)
    ((port, out),) = send(r, WAN, offloaded(synack))
    _, pkt = split(out)
    assert port == LAN0 and IP(pkt).dst == H1 and partial_ok(pkt)
    ((_, out),) = send(r, LAN0, offloaded(data_segment(size=3000), GSO_TCPV4, 1448))
    hdr, pkt = split(out)
    assert hdr[1] == GSO_TCPV4 and IP(pkt).src == "203.0.113.1" and partial_ok(pkt)


def test_dnat_to_a_port_without_offloads_leaves_whole_valid_segments():
    r = make(nat="-A PREROUTING -i wan0 -p tcp --dport 8080 -j DNAT --to-destination 10.2.0.2:80")
    syn = IP(src=SRV, dst="203.0.113.1") / TCP(sport=40000, dport=8080, flags="S", seq=999)
    ((port, out),) = send(r, WAN, offloaded(syn))
    assert port == LAN1 and whole_ok(out) and IP(out)[TCP].dport == 80
    synack = IP(src=H2, dst=SRV) / TCP(sport=80, dport=40000, flags="SA", ack=1000)
    assert len(send(r, LAN1, raw(synack))) == 1
    seg = data_segment(size=3000, src=SRV, dst="203.0.113.1")
    seg[TCP].dport = 8080
    outs = send(r, WAN, offloaded(seg, GSO_TCPV4, 1448))
    assert len(outs) == 3 and all(p == LAN1 and whole_ok(b) for p, b in outs)
    assert {IP(b)[TCP].dport for _, b in outs} == {80}


def test_ftp_helper_rewrites_a_partial_segment_whole_and_adjusts_later_ones_partially():
    r = make(nat="-A POSTROUTING -o wan0 -j MASQUERADE",
             raw_table="*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                       "-A PREROUTING -p tcp --dport 21 -j CT --helper ftp\nCOMMIT\n")

    def client(flags, seq, ack, data=b""):
        pkt = IP(src=H1, dst=SRV) / TCP(sport=40000, dport=21, flags=flags, seq=seq, ack=ack)
        ((_, out),) = send(r, LAN0, offloaded(pkt / Raw(data) if data else pkt))
        return split(out)

    def server(flags, seq, ack, data=b""):
        pkt = IP(src=SRV, dst="203.0.113.1") / TCP(sport=21, dport=40000, flags=flags, seq=seq,
                                                  ack=ack)
        ((_, out),) = send(r, WAN, offloaded(pkt / Raw(data) if data else pkt))
        return split(out)

    client("S", 999, 0)
    server("SA", 4999, 1000)
    client("A", 1000, 5000)
    client("PA", 1000, 5000, b"USER a\r\n")                 # the helper reads from a line start
    hdr, pkt = client("PA", 1008, 5000, b"PORT 10,1,0,2,195,80\r\n")
    assert bytes(IP(pkt)[Raw].load) == b"PORT 203,0,113,1,195,80\r\n"
    assert hdr == (0, 0, 0, 0, 0, 0) and whole_ok(pkt)       # rewritten: finished here
    hdr, pkt = server("A", 5000, 1033)
    assert hdr[0] == NEEDS_CSUM and IP(pkt)[TCP].ack == 1030 and partial_ok(pkt)
    hdr, pkt = client("PA", 1030, 5000, b"LIST\r\n")
    assert hdr[0] == NEEDS_CSUM and IP(pkt)[TCP].seq == 1033 and partial_ok(pkt)


# -- refused headers ----------------------------------------------------------

@pytest.mark.parametrize("frame", [
    # a TCP segmentation type on a UDP packet
    offloaded(IP(src=H1, dst=SRV) / UDP(sport=1, dport=2) / Raw(b"x" * 3000), GSO_TCPV4, 1000),
    # segmentation without a partial checksum
    offloaded(IP(src=H1, dst=SRV) / UDP(sport=1, dport=2) / Raw(b"x" * 3000), GSO_UDP_L4, 1000,
              flags=0),
    # a gso_size of 0
    offloaded(IP(src=H1, dst=SRV) / UDP(sport=1, dport=2) / Raw(b"x" * 3000), GSO_UDP_L4, 0),
    # a type never offered (UFO)
    offloaded(IP(src=H1, dst=SRV) / UDP(sport=1, dport=2) / Raw(b"x" * 3000), 3, 1000),
    # a checksum field beyond the packet
    VNET.pack(NEEDS_CSUM, 0, 0, 0, 20, 60000) + raw(IP(src=H1, dst=SRV) / UDP() / Raw(b"x")),
    # a partial checksum on a fragment
    offloaded(IP(src=H1, dst=SRV, flags="MF") / UDP(sport=1, dport=2) / Raw(b"x" * 16)),
], ids=["tcp-gso-on-udp", "gso-without-csum", "gso-size-0", "ufo", "csum-outside", "fragment"])
def test_a_header_no_stack_sends_is_dropped_and_counted(frame):
    r = make()
    assert send(r, LAN0, frame) == []
    assert r.counters.drops[Drop.BAD_OFFLOAD] == 1


def test_a_frame_shorter_than_the_header_is_short():
    r = make()
    assert send(r, LAN0, b"\0" * 5) == []
    assert r.counters.drops[Drop.SHORT] == 1


# -- other ports and the router's own packets ---------------------------------

def test_a_packet_from_a_port_without_offloads_gets_an_empty_header():
    r = make()
    pkt = raw(IP(src=H2, dst=SRV) / UDP(sport=5000, dport=53) / Raw(b"q"))
    ((port, out),) = send(r, LAN1, pkt)
    hdr, body = split(out)
    assert port == WAN and hdr == (0, 0, 0, 0, 0, 0) and whole_ok(body)


def test_the_routers_own_answers_get_an_empty_header():
    r = make()
    ping = raw(IP(src=H1, dst="10.1.0.1") / ICMP(id=1, seq=1) / Raw(b"hi"))
    ((port, out),) = send(r, LAN0, VNET.pack(0, 0, 0, 0, 0, 0) + ping)
    hdr, body = split(out)
    assert port == LAN0 and hdr == (0, 0, 0, 0, 0, 0) and IP(body)[ICMP].type == 0


def test_conntrack_accounting_counts_the_segments_of_a_super_segment():
    r = make()
    r.conntrack.settings.acct = 1
    established(r)
    send(r, LAN0, offloaded(data_segment(size=4000), GSO_TCPV4, 1000))
    (ct,) = r.conntrack.entries()
    assert ct.acct[0] == 1 + 4 and ct.acct[1] == 40 + 4 * 40 + 4000


# -- TAP ports ----------------------------------------------------------------

ROUTER_MAC = bytes.fromhex("020000000001")
H2_MAC = "02:00:00:00:00:22"


def make_tap() -> Router:
    """lan1 as a TAP port with offloads, h2 behind it."""
    return Router([PortSpec(LAN0, "lan0", Kind.TUN, ip_bytes("10.1.0.1"), 24, offload=True),
                   PortSpec(LAN1, "lan1", Kind.TAP, ip_bytes("10.2.0.1"), 24, mac=ROUTER_MAC,
                            offload=True),
                   PortSpec(WAN, "wan0", Kind.TUN, ip_bytes("203.0.113.1"), 24, offload=True)])


def to_router(pkt) -> Ether:
    return Ether(src=H2_MAC, dst="02:00:00:00:00:01") / pkt


def learn_h2(r: Router) -> None:
    arp = to_router(ARP(op=2, hwsrc=H2_MAC, psrc=H2, hwdst="02:00:00:00:00:01", pdst="10.2.0.1"))
    assert send(r, LAN1, VNET.pack(0, 0, 0, 0, 0, 0) + raw(arp)) == []


def test_tap_partial_checksum_counts_from_the_ethernet_header():
    r = make_tap()
    pkt = IP(src=H2, dst=SRV) / UDP(sport=5000, dport=53) / Raw(b"q" * 40)
    b = partial(pkt)
    eth = Ether(src=H2_MAC, dst="02:00:00:00:00:01", type=0x0800)
    frame = VNET.pack(NEEDS_CSUM, 0, 0, 0, 14 + 20, 6) + raw(eth / Raw(b))
    ((port, out),) = send(r, LAN1, frame)
    hdr, body = split(out)
    assert port == WAN and hdr[0] == NEEDS_CSUM and hdr[4:] == (20, 6) and partial_ok(body)


def test_super_segment_to_a_tap_port_leaves_whole_behind_its_ethernet_header():
    r = make_tap()
    learn_h2(r)
    seg = data_segment(size=4000, dst=H2)             # picked up mid-stream (nf_conntrack_tcp_loose)
    ((port, out),) = send(r, LAN0, offloaded(seg, GSO_TCPV4, 1448))
    hdr, frame = split(out)
    eth = Ether(frame)
    assert port == LAN1 and eth.dst == H2_MAC and eth.src == "02:00:00:00:00:01"
    assert hdr == (NEEDS_CSUM, GSO_TCPV4, 14 + 40, 1448, 14 + 20, 16)
    assert partial_ok(frame[14:]) and len(frame) == 14 + len(raw(seg))


def test_super_segment_to_an_unresolved_tap_neighbour_waits_complete():
    r = make_tap()
    seg = data_segment(size=3000, dst=H2)
    ((port, frame),) = send(r, LAN0, offloaded(seg, GSO_TCPV4, 1448))   # the ARP request only
    hdr, body = split(frame)
    assert port == LAN1 and hdr == (0, 0, 0, 0, 0, 0) and Ether(body)[ARP].pdst == H2
    arp = to_router(ARP(op=2, hwsrc=H2_MAC, psrc=H2, hwdst="02:00:00:00:00:01", pdst="10.2.0.1"))
    outs = send(r, LAN1, VNET.pack(0, 0, 0, 0, 0, 0) + raw(arp), 0.1)
    assert [p for p, _ in outs] == [LAN1] * 3
    for _, frame in outs:
        hdr, body = split(frame)
        assert hdr == (0, 0, 0, 0, 0, 0) and whole_ok(body[14:])
    assert [len(IP(split(f)[1][14:])[TCP].payload) for _, f in outs] == [1448, 1448, 104]


def test_arp_replies_on_an_offloading_tap_port_get_an_empty_header():
    r = make_tap()
    who = Ether(src=H2_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=H2_MAC, psrc=H2,
                                                          pdst="10.2.0.1")
    ((port, frame),) = send(r, LAN1, VNET.pack(0, 0, 0, 0, 0, 0) + raw(who))
    hdr, body = split(frame)
    assert port == LAN1 and hdr == (0, 0, 0, 0, 0, 0) and Ether(body)[ARP].op == 2
