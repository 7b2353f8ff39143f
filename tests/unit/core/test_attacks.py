"""Hardening: hostile traffic against the core, on crafted packets.

Fragment attacks (teardrop, ping of death, never-completing first fragments,
tiny first fragments splitting the TCP header) and TCP tricks (out-of-window
RST and data, impossible flag sets).  Each is bounded in packet count and
checks: no exception (Drop.INTERNAL stays 0), the reassembly memory stays
under ipfrag_high_thresh (plus one fragment, as in the kernel, which checks
before adding), the drop is counted under its reason, and nothing wrongly
reassembled is forwarded.
"""
import pytest
from packets import (
    H1,
    LAN_TUN,
    SRV,
    WAN,
    frame,
    make_router,
    parse_out,
    tcp4,
)
from scapy.all import IP, TCP, UDP, Raw, fragment, raw

from tunrouter.conntrack.proto.tcp import TcpState
from tunrouter.core import defrag
from tunrouter.core.hooks import engine_for
from tunrouter.core.router import Router
from tunrouter.core.verdict import Drop

STATEFUL = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -i lan0 -j ACCEPT
COMMIT
"""


def small_router(high_thresh: int) -> Router:
    base = make_router()
    return Router(base.ports, ipfrag={"high_thresh": high_thresh, "low_thresh": 0})


def ipfrag(src, dst, ident, offset8, payload: bytes, mf: bool, proto=17, ttl=64):
    """One raw fragment: offset in 8-byte units, payload bytes as given."""
    return frame(IP(src=src, dst=dst, id=ident, frag=offset8, flags="MF" if mf else 0,
                    proto=proto, ttl=ttl) / Raw(payload))


def glue(outs) -> bytes:
    """The payload of the forwarded fragments, put back by offset."""
    parts = sorted((p.frag * 8, bytes(p.payload)) for p in (parse_out(f) for _, f in outs))
    data = b""
    for off, chunk in parts:
        assert off == len(data), "hole or overlap in what was forwarded"
        data += chunk
    return data


def no_bug(r):
    assert r.counters.drops[Drop.INTERNAL] == 0


# -- fragments ------------------------------------------------------------------


def test_teardrop_overlapping_second_fragment_drops_the_datagram():
    r = make_router()
    whole = IP(src=H1, dst=SRV, id=77) / UDP(sport=5000, dport=53) / Raw(b"A" * 64)
    first, second = bytes(raw(whole))[20:20 + 48], bytes(raw(whole))[20 + 40:]
    # Classic teardrop: the second fragment starts inside the first (offset 40 < 48).
    assert r.process(LAN_TUN, ipfrag(H1, SRV, 77, 0, first, True), 0.0) == []
    assert r.process(LAN_TUN, ipfrag(H1, SRV, 77, 5, second, False), 0.1) == []
    assert r.counters.drops[Drop.FRAG_OVERLAP] == 1
    assert r.counters.forwarded == 0
    # The queue is gone with its memory; a later clean copy of the datagram still goes through.
    assert r.defrag.queues == 0 and r.defrag.mem == 0
    outs = [o for f in fragment(whole, fragsize=32) for o in r.process(LAN_TUN, frame(f), 0.2)]
    # Refragmented no larger than it came (frag_max_size): glue the pieces back.
    assert glue(outs) == bytes(raw(whole))[20:]
    no_bug(r)


def test_teardrop_variants_never_forward_a_mixed_datagram():
    """Many overlap shapes (inside, straddling, reordered): nothing forwarded, all counted."""
    r = make_router()
    shapes = [  # (offset8, length, mf) triples, in arrival order
        [(0, 48, True), (5, 24, False)],             # starts inside the first
        [(2, 16, True), (0, 24, True), (4, 8, False)],  # head straddles a held run
        [(3, 8, False), (0, 32, True)],              # the head covers the tail
        [(0, 16, True), (2, 16, True), (1, 16, False)],  # reversed overlap
    ]
    for ident, shape in enumerate(shapes, 100):
        for off8, n, mf in shape:
            r.process(LAN_TUN, ipfrag(H1, SRV, ident, off8, b"Z" * n, mf), 0.0)
    assert r.counters.forwarded == 0
    assert r.counters.drops[Drop.FRAG_OVERLAP] + r.counters.drops[Drop.FRAG_CORRUPT] == len(shapes)
    assert r.counters.drops[Drop.FRAG_OVERLAP] >= 3
    no_bug(r)


def test_ping_of_death_is_dropped_as_oversize_when_complete():
    r = make_router()
    chunk = b"P" * 1480
    # 45 fragments of 1480 bytes (66,600 bytes of data) then a last one at offset 65528.
    for i in range(45):
        assert r.process(WAN, ipfrag(SRV, H1, 9, i * 185, chunk, True, proto=1), 0.0) == []
    out = r.process(WAN, ipfrag(SRV, H1, 9, 65528 // 8, b"x" * 100, False, proto=1), 0.1)
    # The gap between 66,600 and 65,528 is an overlap here: the tail starts
    # inside held data.  A properly laid ping of death (contiguous, ending
    # past 65,535) is checked next.
    assert out == []
    r2 = make_router()
    n = 65528 // 8
    for i in range(0, n, 185):
        size = min(1480, 65528 - i * 8)
        assert r2.process(WAN, ipfrag(SRV, H1, 10, i, b"P" * size, True, proto=1), 0.0) == []
    out = r2.process(WAN, ipfrag(SRV, H1, 10, n, b"x" * 100, False, proto=1), 0.1)
    assert out == []
    assert r2.counters.drops[Drop.FRAG_OVERSIZE] == 1
    assert r2.counters.forwarded == 0
    assert r2.defrag.queues == 0 and r2.defrag.mem == 0
    no_bug(r)
    no_bug(r2)


def test_first_fragment_flood_is_held_under_high_thresh_and_refused_beyond():
    high = 64 * 1024
    r = small_router(high)
    biggest = defrag.truesize(1500)
    refused = 0
    for i in range(2000):      # every one a new datagram that never completes
        src = f"198.51.100.{i % 250 + 1}"
        r.process(WAN, ipfrag(src, H1, i, 0, b"F" * 1480, True), i * 0.001)
        assert r.defrag.mem <= high + biggest + defrag.QUEUE_TRUESIZE
    refused = r.counters.drops[Drop.FRAG_NO_MEM]
    assert refused > 1900
    assert r.defrag.snapshot()["drops"]["frag-no-mem"] == refused
    assert r.counters.forwarded == 0
    # The timer frees it all; new fragments are accepted again.
    assert r.tick(100.0) == []          # transit datagrams: no ICMP time exceeded
    assert r.defrag.queues == 0 and r.defrag.mem == 0
    whole = IP(src=SRV, dst=H1, id=1) / UDP(sport=53, dport=5000) / Raw(b"k" * 100)
    outs = [o for f in fragment(whole, fragsize=64) for o in r.process(WAN, frame(f), 101.0)]
    assert glue(outs) == bytes(raw(whole))[20:]
    no_bug(r)


def test_first_fragment_flood_at_default_thresh_stays_bounded():
    """10,000 first fragments at the default 4 MiB: memory bounded, refusals counted."""
    r = make_router()
    for i in range(10000):
        r.process(WAN, ipfrag(f"198.51.{i // 250 % 250}.{i % 250 + 1}", H1, i & 0xFFFF, 0,
                              b"F" * 1480, True), 0.0)
    assert r.defrag.mem <= defrag.HIGH_THRESH + defrag.truesize(1500) + defrag.QUEUE_TRUESIZE
    assert r.counters.drops[Drop.FRAG_NO_MEM] > 0
    assert r.defrag.queues + r.counters.drops[Drop.FRAG_NO_MEM] == 10000
    no_bug(r)


def test_tiny_first_fragment_splitting_tcp_header_cannot_sneak_past_a_port_rule():
    """RFC 1858: an 8-byte first fragment holds only the ports; flags come later.

    The router reassembles before conntrack and the rules (nf_defrag_ipv4), so
    the rules see the whole header: a SYN to a blocked port is blocked, and a
    rewriting second fragment (offset 1, the tiny overlap attack) is an overlap.
    """
    r = make_router()
    r.set_rules(engine_for("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                           "-A FORWARD -p tcp --dport 23 -j DROP\n"
                           "-A FORWARD -p tcp --syn -j DROP\nCOMMIT\n"))
    seg = bytes(raw(IP(src=SRV, dst=H1) / TCP(sport=4444, dport=23, flags="S", seq=1)))[20:]
    # 1) tiny first fragment (8 bytes: ports and seq), the rest with flags.
    assert r.process(WAN, ipfrag(SRV, H1, 300, 0, seg[:8], True, proto=6), 0.0) == []
    assert r.process(WAN, ipfrag(SRV, H1, 300, 1, seg[8:], False, proto=6), 0.0) == []
    assert r.counters.drops[Drop.RULE] == 1
    # 2) the overlap variant: a harmless first fragment (port 80, ACK), then a
    # fragment at offset 1 rewriting the header's second half to SYN.  Offset
    # 1 lies inside the first fragment: overlap, datagram dropped.
    ok = bytes(raw(IP(src=SRV, dst=H1) / TCP(sport=4444, dport=80, flags="A", seq=1) / Raw(b"d" * 16)))[20:]
    assert r.process(WAN, ipfrag(SRV, H1, 301, 0, ok[:24], True, proto=6), 0.0) == []
    assert r.process(WAN, ipfrag(SRV, H1, 301, 1, seg[8:] + b"d" * 8, False, proto=6), 0.0) == []
    assert r.counters.drops[Drop.FRAG_OVERLAP] == 1
    # 3) tiny fragments that never carry the flags (first only): held, then timed out.
    for i in range(50):
        assert r.process(WAN, ipfrag(SRV, H1, 400 + i, 0, seg[:8], True, proto=6), 0.0) == []
    assert r.counters.forwarded == 0
    assert r.tick(60.0) == []
    assert r.defrag.queues == 0 and r.defrag.mem == 0
    no_bug(r)


def test_empty_and_corrupt_fragments_are_counted():
    r = make_router()
    r.process(WAN, ipfrag(SRV, H1, 500, 0, b"", True), 0.0)
    assert r.counters.drops[Drop.FRAG_EMPTY] == 1
    r.process(WAN, ipfrag(SRV, H1, 501, 0, b"a" * 32, True), 0.0)
    r.process(WAN, ipfrag(SRV, H1, 501, 2, b"b" * 8, False), 0.0)     # ends before held data
    assert r.counters.drops[Drop.FRAG_CORRUPT] == 1
    r.process(WAN, ipfrag(SRV, H1, 502, 0, b"a" * 16, True), 0.0)
    r.process(WAN, ipfrag(SRV, H1, 502, 0, b"a" * 16, True), 0.0)     # exact duplicate
    assert r.counters.drops[Drop.FRAG_DUP] == 1
    assert r.counters.forwarded == 0
    no_bug(r)


# -- TCP tricks --------------------------------------------------------------------


def established(r):
    """H1:40000 -> SRV:80, handshake through the stateful ruleset; returns next seqs."""
    assert r.process(LAN_TUN, tcp4(H1, SRV, 40000, 80, "S", seq=1000), 0.0)
    assert r.process(WAN, tcp4(SRV, H1, 80, 40000, "SA", seq=5000, ack=1001), 0.1)
    assert r.process(LAN_TUN, tcp4(H1, SRV, 40000, 80, "A", seq=1001, ack=5001), 0.2)
    assert r.process(WAN, tcp4(SRV, H1, 80, 40000, "PA", data=b"hello", seq=5001, ack=1001), 0.3)
    ct = only_conn(r)
    assert ct.state == TcpState.ESTABLISHED
    return ct


def only_conn(r):
    conns = r.conntrack.conns(0.5)
    assert len(conns) == 1
    return conns[0]


def stateful():
    r = make_router()
    r.set_rules(engine_for(STATEFUL))
    return r


@pytest.mark.parametrize("seq", [5006 + 10_000_000, 5006 - 10_000_000 & 0xFFFFFFFF, 5006 + (1 << 31)])
def test_out_of_window_rst_does_not_tear_down(seq):
    r = stateful()
    ct = established(r)
    inval = r.conntrack.stats.invalid
    assert r.process(WAN, tcp4(SRV, H1, 80, 40000, "R", seq=seq), 1.0) == []
    assert r.process(WAN, tcp4(SRV, H1, 80, 40000, "RA", seq=seq, ack=1001), 1.1) == []
    assert ct.state == TcpState.ESTABLISHED
    assert only_conn(r) is ct
    assert r.conntrack.stats.invalid >= inval + 1
    # The real peer carries on in window.
    assert r.process(WAN, tcp4(SRV, H1, 80, 40000, "PA", data=b"more", seq=5006, ack=1001), 1.2)
    assert r.process(LAN_TUN, tcp4(H1, SRV, 40000, 80, "A", seq=1001, ack=5010), 1.3)
    no_bug(r)


def test_out_of_window_data_injection_is_invalid_and_dropped():
    r = stateful()
    ct = established(r)
    before = r.counters.drops[Drop.RULE]
    # Far beyond the receiver's window, and an ACK for data never sent.
    assert r.process(WAN, tcp4(SRV, H1, 80, 40000, "PA", data=b"evil", seq=5006 + 50_000_000,
                               ack=1001), 1.0) == []
    assert r.process(WAN, tcp4(SRV, H1, 80, 40000, "PA", data=b"evil", seq=5006,
                               ack=1001 + 50_000_000), 1.1) == []
    assert r.counters.drops[Drop.RULE] == before + 2
    assert r.rules.counters("filter", "FORWARD", 1)[0] == 2      # the INVALID rule took them
    assert ct.state == TcpState.ESTABLISHED
    assert r.process(WAN, tcp4(SRV, H1, 80, 40000, "PA", data=b"ok", seq=5006, ack=1001), 1.2)
    no_bug(r)


@pytest.mark.parametrize("flags", ["SF", "SFR", "SR", "FUP", "", "SFPAUEC", "F", "U"])
def test_impossible_flags_are_invalid_and_dropped_on_new(flags):
    r = make_router()
    r.set_rules(engine_for(STATEFUL.replace("-A FORWARD -i lan0 -j ACCEPT\n",
                                            "-A FORWARD -j ACCEPT\n")))
    out = r.process(WAN, tcp4(SRV, H1, 4444, 22, flags, seq=77), 0.0)
    assert out == []
    assert r.rules.counters("filter", "FORWARD", 1)[0] == 1         # dropped by the INVALID rule
    assert r.conntrack.count() == 0
    no_bug(r)


@pytest.mark.parametrize("flags", ["SF", "SR", "SFR", "FUP", ""])
def test_impossible_flags_inside_a_connection_are_invalid(flags):
    r = stateful()
    ct = established(r)
    assert r.process(WAN, tcp4(SRV, H1, 80, 40000, flags, seq=5006, ack=1001), 1.0) == []
    assert r.rules.counters("filter", "FORWARD", 1)[0] == 1
    assert ct.state == TcpState.ESTABLISHED
    no_bug(r)


def test_blind_in_window_rst_keeps_the_connection():
    """RFC 5961's blind reset: in window but not the exact next seq.  Passed on
    (the endpoint answers a challenge ACK) but the entry stays ESTABLISHED."""
    r = stateful()
    ct = established(r)
    out = r.process(WAN, tcp4(SRV, H1, 80, 40000, "R", seq=5006 + 100), 1.0)
    assert out                                     # forwarded so the host can challenge it
    assert ct.state == TcpState.ESTABLISHED
    assert r.process(WAN, tcp4(SRV, H1, 80, 40000, "PA", data=b"more", seq=5006, ack=1001), 1.1)
    # The exact RST does close it.
    assert r.process(WAN, tcp4(SRV, H1, 80, 40000, "R", seq=5010), 1.2)
    assert ct.state == TcpState.CLOSE
    no_bug(r)


def test_syn_flood_of_new_entries_respects_nf_conntrack_max():
    """10,000 SYNs from distinct sources into a 64-entry table: bounded, early drop counted."""
    from tunrouter.conntrack.settings import Settings
    base = make_router()
    r = Router(base.ports, conntrack=Settings(nf_conntrack_max=64))
    for i in range(10000):
        r.process(WAN, tcp4(f"198.51.{i // 250 % 250}.{i % 250 + 1}", H1, 1024 + i % 60000, 80, "S",
                            seq=i), i * 1e-4)
        assert r.conntrack.count() <= 64
    st = r.conntrack.stats
    assert st.early_drop > 9000
    assert st.early_drop + st.drop + r.conntrack.count() >= 10000 - 64
    no_bug(r)
