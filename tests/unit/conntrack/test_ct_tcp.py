"""TCP tracking paths beyond single table cells: windows, timeouts, RST, reopening, resync.

Each expected `conntrack -L` line was printed by Linux 6.18 for the same
segments (see ct_packets.py), taken just after the last one, hence one
second less than the full timeout.
"""
import pytest

from ct_packets import S, Router, Tcp, desc, tcp_seg
from tunrouter.conntrack.conn import IPS_ASSURED, IPS_DYING, CtInfo
from tunrouter.conntrack.events import EventType
from tunrouter.conntrack.proto.tcp import (END, SACK_PERM, SCALE, SEEN, WINDOW_SCALE, TcpState,
                                           highest_sack, parse_options)

TUPLES = ("src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 "
          "src=10.0.2.2 dst=10.0.1.2 sport=80 dport=40000")
NEW, EST, EST_REPLY, INVALID = CtInfo.NEW, CtInfo.ESTABLISHED, CtInfo.ESTABLISHED_REPLY, CtInfo.INVALID


def established(**sysctls) -> Tcp:
    tcp = Tcp(Router(**sysctls))
    tcp.to_state("ESTABLISHED")
    return tcp


def states(tcp: Tcp) -> list[str]:
    return [line.split()[3] for line in tcp.r.listing()]


def test_handshake_and_close_walk():
    tcp = Tcp(Router())
    steps = [
        (tcp.client, "S", NEW, "SYN_SENT"),
        (tcp.server, "SA", EST_REPLY, "SYN_RECV"),
        (tcp.client, "A", EST, "ESTABLISHED"),
        (tcp.client, "FA", EST, "FIN_WAIT"),
        (tcp.server, "A", EST_REPLY, "CLOSE_WAIT"),
        (tcp.server, "FA", EST_REPLY, "LAST_ACK"),
        (tcp.client, "A", EST, "TIME_WAIT"),
    ]
    for send, flags, want_ctinfo, want_state in steps:
        ct, ctinfo = send(flags)
        assert (ctinfo, TcpState(ct.state).name) == (want_ctinfo, want_state)
    assert tcp.r.listing() == [f"tcp      6 119 TIME_WAIT {TUPLES} [ASSURED] mark=0 use=1"]


def test_syn_sent_retransmitted_syns_stay_new():
    """All ORIGINAL packets before a reply are NEW (kernel: resolve_normal_ct)."""
    tcp = Tcp(Router())
    tcp.client("S")
    assert tcp.client("S", seq=1000)[1] == NEW


def test_syn_sent_syn_retransmit_does_not_refresh():
    tcp = Tcp(Router())
    tcp.client("S")
    tcp.client("S", seq=1000, after=1.5)
    assert tcp.r.listing() == [
        "tcp      6 118 SYN_SENT src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 [UNREPLIED] "
        "src=10.0.2.2 dst=10.0.1.2 sport=80 dport=40000 mark=0 use=1"]


def test_syn_sent_rst_deletes():
    """A SYN answered by RST: the entry goes at once, and the RST still gets its entry for NAT."""
    tcp = Tcp(Router())
    tcp.client("S")
    ct, ctinfo = tcp.server("RA")
    assert ctinfo == EST_REPLY
    assert ct.status & IPS_DYING
    assert tcp.r.listing() == []
    destroy = tcp.r.table.drain_events()[-1]
    assert (destroy.type, destroy.state, destroy.timeout) == (EventType.DESTROY, TcpState.CLOSE, 120)


def test_syn_recv_ack_assures():
    tcp = Tcp(Router())
    tcp.client("S")
    tcp.server("SA")
    ct, _ = tcp.client("A")
    assert ct.status & IPS_ASSURED


# -- window tracking (kernel: tcp_in_window) ---------------------------------

def test_established_data_in_window_unacked_timeout():
    tcp = established()
    assert tcp.client("PA", b"x" * 100)[1] == EST
    assert tcp.r.listing() == [f"tcp      6 299 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


def test_established_data_acked_restores_timeout():
    tcp = established()
    tcp.client("PA", b"x" * 100)
    tcp.server("A")
    assert tcp.r.listing() == [f"tcp      6 431999 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


def test_established_seq_over_window_invalid():
    tcp = established()
    _ct, ctinfo = tcp.client("PA", b"x" * 10, seq=tcp.c + 10_000_000)
    assert ctinfo == INVALID
    assert tcp.r.table.reason.startswith("SEQ is over upper bound")
    assert tcp.r.listing() == [f"tcp      6 431999 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


def test_established_ack_over_upper_bound_invalid():
    tcp = established()
    assert tcp.client("PA", b"x" * 10, ack=tcp.s + 5000)[1] == INVALID
    assert tcp.r.table.reason == f"ACK is over upper bound {tcp.s + 1} (ACKed data not seen yet)"


def test_established_old_data_ignored_not_invalid():
    """II fails (data already acknowledged, retransmitted): accepted, nothing updated."""
    tcp = established()
    tcp.client("PA", b"x" * 100)
    tcp.server("A")
    far_back = (tcp.c - 70_000_000) & 0xFFFFFFFF
    ct, ctinfo = tcp.client("PA", b"y" * 10, seq=far_back)
    assert ctinfo == EST
    assert ct.w[END] == tcp.c


@pytest.mark.parametrize("sysctl", ["nf_conntrack_tcp_be_liberal"])
def test_established_be_liberal_accepts_out_of_window(sysctl):
    tcp = established(**{sysctl: 1})
    assert tcp.client("PA", b"x" * 10, seq=tcp.c + 10_000_000)[1] == EST
    assert tcp.client("PA", b"x" * 10, ack=tcp.s + 5000)[1] == EST


def test_established_scaled_window_allows_far_data():
    """Both SYNs offered window scale 7: 65160 << 7 bytes are in window."""
    tcp = established()
    assert tcp.server("PA", b"x" * 10, seq=tcp.s + 70_000)[1] == EST_REPLY


def test_established_unscaled_window_refuses_far_data():
    tcp = Tcp(Router())
    tcp.client("S", options=[("MSS", 1460)])
    tcp.server("SA", options=[("MSS", 1460)])
    tcp.client("A")
    assert tcp.server("PA", b"x" * 10, seq=tcp.s + 70_000)[1] == INVALID


def test_established_window_scale_needs_both_sides():
    tcp = Tcp(Router())
    tcp.client("S")                                  # offers scale 7
    ct, _ = tcp.server("SA", options=[("MSS", 1460)])
    assert (ct.w[SCALE], ct.w[SEEN + SCALE]) == (0, 0)


def test_established_sack_within_sent_data():
    tcp = established()
    tcp.client("PA", b"x" * 100)
    sack = [("NOP", None), ("NOP", None), ("SAck", (tcp.c - 50, tcp.c))]
    assert tcp.server("A", ack=tcp.c - 100, options=sack)[1] == EST_REPLY


def test_established_sack_beyond_sent_data_invalid():
    tcp = established()
    tcp.client("PA", b"x" * 100)
    sack = [("NOP", None), ("NOP", None), ("SAck", (tcp.c - 50, tcp.c + 100))]
    assert tcp.server("A", ack=tcp.c - 100, options=sack)[1] == INVALID


def test_established_zero_window_timeout():
    tcp = established()
    tcp.server("A", window=0)
    assert tcp.r.listing() == [f"tcp      6 299 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


# -- retransmissions (nf_conntrack_tcp_max_retrans) ---------------------------

def _acks(tcp: Tcp, n: int):
    tcp.client("PA", b"x" * 100)
    tcp.server("A")
    for _ in range(n):
        tcp.client("A")


def test_established_three_same_acks_keep_timeout():
    tcp = established()
    _acks(tcp, 3)
    assert tcp.r.listing() == [f"tcp      6 431999 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


def test_established_max_retrans_lowers_timeout():
    """The 4th identical ACK is the 3rd retransmission: timeout max_retrans (300 s)."""
    tcp = established()
    _acks(tcp, 4)
    assert tcp.r.listing() == [f"tcp      6 299 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


def test_established_max_retrans_setting():
    tcp = established(nf_conntrack_tcp_max_retrans=1, nf_conntrack_tcp_timeout_max_retrans=50)
    _acks(tcp, 2)
    assert tcp.r.listing() == [f"tcp      6 49 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


# -- loose pick-up (nf_conntrack_tcp_loose) -----------------------------------

def test_none_ack_picks_up_mid_stream():
    tcp = Tcp(Router())
    tcp.c, tcp.s = 7000, 9000
    ct, ctinfo = tcp.client("PA", b"x" * 10)
    assert ctinfo == NEW
    assert not ct.status & IPS_ASSURED
    assert tcp.r.listing() == [
        "tcp      6 299 ESTABLISHED src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 [UNREPLIED] "
        "src=10.0.2.2 dst=10.0.1.2 sport=80 dport=40000 mark=0 use=1"]


def test_none_ack_pickup_assured_after_both_ways():
    tcp = Tcp(Router())
    tcp.c, tcp.s = 7000, 9000
    tcp.client("PA", b"x" * 10)
    ct, _ = tcp.server("A")
    assert not ct.status & IPS_ASSURED
    tcp.client("PA", b"x" * 10)
    assert tcp.r.listing() == [f"tcp      6 299 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


def test_none_ack_loose_off_invalid():
    tcp = Tcp(Router(nf_conntrack_tcp_loose=0))
    assert tcp.client("A")[1] == INVALID
    assert tcp.r.listing() == []


# -- RST ------------------------------------------------------------------------

def test_established_rst_exact_closes():
    tcp = established()
    tcp.client("PA", b"x" * 100)
    tcp.server("A")
    tcp.server("R")
    assert tcp.r.listing() == [f"tcp      6 9 CLOSE {TUPLES} [ASSURED] mark=0 use=1"]


def test_established_rst_inexact_keeps_state():
    """In window but not at the acknowledged point: stay ESTABLISHED for a challenge ACK, 10 s."""
    tcp = established()
    tcp.client("PA", b"x" * 100)
    tcp.server("A")
    assert tcp.server("R", seq=tcp.s + 50)[1] == EST_REPLY
    assert tcp.r.listing() == [f"tcp      6 9 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


def test_established_rst_below_maxack_invalid():
    tcp = established()
    tcp.client("PA", b"x" * 100)
    tcp.server("A")
    assert tcp.client("R", seq=tcp.c - 50)[1] == INVALID
    assert tcp.r.table.reason == "invalid rst"


def test_established_rst_below_maxack_ignore_invalid_rst():
    tcp = established(nf_conntrack_tcp_ignore_invalid_rst=1)
    tcp.client("PA", b"x" * 100)
    tcp.server("A")
    assert tcp.client("R", seq=tcp.c - 50)[1] == EST
    assert tcp.r.listing() == [f"tcp      6 9 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


def test_established_rst_after_data_train_closes():
    """P seq:end then R end from the same side is exact enough (kernel: "RST is part of train")."""
    tcp = established()
    tcp.client("PA", b"x" * 100)
    tcp.server("A")
    tcp.client("PA", b"x" * 10)
    tcp.client("R")
    assert tcp.r.listing() == [f"tcp      6 9 CLOSE {TUPLES} [ASSURED] mark=0 use=1"]


def test_established_rst_out_of_window_invalid():
    tcp = established()
    assert tcp.server("R", seq=tcp.s + 10_000_000)[1] == INVALID


def test_established_fin_out_of_window_after_peer_fin_lowers_timeout():
    """kernel: nf_tcp_handle_invalid: an invalid FIN answering the peer's FIN cuts the timeout."""
    tcp = established()
    tcp.client("FA")
    assert tcp.server("FA", seq=tcp.s + 10_000_000)[1] == INVALID
    assert tcp.r.listing() == [f"tcp      6 119 FIN_WAIT {TUPLES} [ASSURED] mark=0 use=1"]


def test_established_fin_out_of_window_after_peer_rst_lowers_timeout():
    tcp = established()
    assert tcp.client("R", seq=tcp.c + 300_000)[1] == INVALID
    assert tcp.server("FA", seq=tcp.s + 10_000_000)[1] == INVALID
    assert tcp.r.listing() == [f"tcp      6 299 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


# -- reopening, ignoring, resync ---------------------------------------------

def test_time_wait_syn_reopens():
    tcp = Tcp(Router())
    tcp.to_state("TIME_WAIT")
    old = tcp.r.table.conns(tcp.r.now)[0]
    tcp.r.table.drain_events()
    new, ctinfo = tcp.client("S", seq=tcp.c + 100_000)
    assert ctinfo == NEW and new is not old
    assert old.status & IPS_DYING
    assert [e.type for e in tcp.r.table.drain_events()] == [EventType.DESTROY, EventType.NEW]
    assert states(tcp) == ["SYN_SENT"]


def test_close_syn_reopens():
    tcp = Tcp(Router())
    tcp.to_state("CLOSE")                # the client's own RST closed it
    assert tcp.client("S")[1] == NEW
    assert states(tcp) == ["SYN_SENT"]


def test_close_after_peer_rst_syn_ignored():
    """Reopen needs a FIN-initiated close or an RST from the same side; else the SYN is ignored."""
    tcp = Tcp(Router())
    tcp.to_state("ESTABLISHED")
    tcp.server("R")
    assert tcp.client("S")[1] == EST
    assert states(tcp) == ["CLOSE"]


def test_time_wait_server_syn_reopens_reversed():
    tcp = Tcp(Router())
    tcp.to_state("TIME_WAIT")
    ct, ctinfo = tcp.server("S")
    assert ctinfo == NEW
    assert ct.orig[0] == desc(tcp_seg("S", "S", 0)).src == bytes(map(int, S.split(".")))


def test_established_syn_ignored_then_synack_resyncs():
    """An ignored SYN and the SYN/ACK answering it: the firewall was out of sync; catch up."""
    tcp = established()
    assert tcp.client("S", seq=77000)[1] == EST
    ct, _ = tcp.server("SA", seq=88000, ack=77001)
    assert ct.state == TcpState.SYN_RECV
    tcp.client("A", seq=77001, ack=88001)
    assert tcp.r.listing() == [f"tcp      6 431999 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


def test_established_ignored_syn_then_rst_closes():
    tcp = established()
    tcp.client("S", seq=77000)
    tcp.server("R")
    assert tcp.r.listing() == [f"tcp      6 9 CLOSE {TUPLES} [ASSURED] mark=0 use=1"]


def test_syn_sent_reply_ack_ignored_then_rst_invalid():
    tcp = Tcp(Router())
    tcp.client("S")
    assert tcp.server("A", seq=4242, ack=99)[1] == EST_REPLY    # ignored: maybe half-open
    assert tcp.client("R", seq=4242)[1] == INVALID
    assert tcp.r.listing() == [f"tcp      6 119 SYN_SENT {TUPLES} mark=0 use=1"]


def test_syn_sent_simultaneous_open():
    tcp = Tcp(Router())
    tcp.client("S")
    assert tcp.server("S")[0].state == TcpState.SYN_SENT2
    tcp.client("SA", seq=1000, ack=5001)
    tcp.server("SA", seq=5000, ack=1001)
    tcp.server("A", seq=5001, ack=1001)
    tcp.client("A", seq=1001, ack=5001)
    assert tcp.r.listing() == [f"tcp      6 431999 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


def test_last_ack_challenge_ack_ignored():
    """RFC 5961: the ACK answering a spurious SYN in LAST_ACK is not the last ACK."""
    tcp = Tcp(Router())
    tcp.to_state("LAST_ACK")
    tcp.client("S", seq=123456)
    tcp.server("A")
    assert tcp.r.listing() == [f"tcp      6 29 LAST_ACK {TUPLES} [ASSURED] mark=0 use=1"]


def test_last_ack_ack_time_wait():
    tcp = Tcp(Router())
    tcp.to_state("LAST_ACK")
    tcp.client("A")
    assert tcp.r.listing() == [f"tcp      6 119 TIME_WAIT {TUPLES} [ASSURED] mark=0 use=1"]


# -- header errors (kernel: tcp_error) ---------------------------------------

@pytest.mark.parametrize("flags,reason", [
    ("SF", "invalid tcp flag combination"),
    ("F", "invalid tcp flag combination"),
    ("SR", "invalid tcp flag combination"),
    ("", "invalid tcp flag combination"),
])
def test_none_bad_flags_invalid(flags, reason):
    r = Router()
    assert r.send(tcp_seg("C", flags, 1000))[1] == INVALID
    assert r.table.reason == reason


def test_none_syn_with_urg_ece_cwr_valid():
    r = Router()
    assert r.send(tcp_seg("C", "SUEC", 1000))[1] == NEW


def test_none_bad_checksum_invalid():
    pkt = tcp_seg("C", "S", 1000)
    pkt["TCP"].chksum = 0x1234
    r = Router()
    assert r.send(pkt)[1] == INVALID
    assert r.table.reason == "bad checksum"


def test_none_bad_checksum_not_checked():
    pkt = tcp_seg("C", "S", 1000)
    pkt["TCP"].chksum = 0x1234
    assert Router(nf_conntrack_checksum=0).send(pkt)[1] == NEW


def test_none_data_offset_beyond_segment_invalid():
    pkt = tcp_seg("C", "S", 1000, options=[])
    pkt["TCP"].dataofs = 15
    r = Router()
    assert r.send(pkt)[1] == INVALID
    assert r.table.reason == "truncated packet"


def test_invalid_packets_counted():
    r = Router()
    r.send(tcp_seg("C", "SF", 1000))
    r.send(tcp_seg("C", "F", 1000))
    assert r.table.stats.invalid == 2


def test_established_packet_from_other_flow_is_new():
    tcp = established()
    other = tcp_seg("C", "S", 1, options=[])
    other["TCP"].sport = 40001
    assert tcp.r.send(other)[1] == NEW
    assert sorted(ct.orig[3] for ct in tcp.r.table.conns(tcp.r.now)) == [40000, 40001]


# -- edge paths, each checked against Linux 6.18 ---------------------------------

def test_syn_recv_rst_seq_zero_closes():
    tcp = Tcp(Router())
    tcp.to_state("SYN_RECV")
    tcp.client("R", seq=0)
    assert tcp.r.listing() == [f"tcp      6 9 CLOSE {TUPLES} mark=0 use=1"]


def test_established_rst_seq_zero_invalid():
    tcp = established()
    assert tcp.client("R", seq=0)[1] == INVALID


def test_syn_sent_rst_answering_challenge_ack_closes():
    """The client resets the half-open connection the server's ignored ACK revealed."""
    tcp = Tcp(Router())
    tcp.client("S")
    tcp.server("A", seq=4242, ack=99)
    assert tcp.client("R", seq=99)[1] == EST           # the ignored reply already set SEEN_REPLY
    assert tcp.r.listing() == [f"tcp      6 9 CLOSE {TUPLES} mark=0 use=1"]


def test_none_ack_pickup_keepalive_reply():
    tcp = Tcp(Router())
    tcp.client("A", seq=7000, ack=9000)
    tcp.server("A", seq=9000, ack=7000)
    tcp.client("A", b"x", seq=6999, ack=9000)          # keepalive: one old byte
    tcp.server("A", seq=9000, ack=7001)
    assert tcp.r.listing() == [f"tcp      6 431999 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


def test_syn_sent2_server_syn_again_reinitialises():
    tcp = Tcp(Router())
    tcp.client("S")
    tcp.server("S")
    assert tcp.server("S", seq=6000)[1] == EST_REPLY
    assert tcp.r.listing() == [f"tcp      6 119 SYN_SENT2 {TUPLES} mark=0 use=1"]


def test_syn_sent_syn_with_new_isn_reinitialises():
    tcp = Tcp(Router())
    tcp.client("S")
    tcp.client("S", seq=6000)
    tcp.server("SA", seq=5000, ack=6001)
    tcp.client("A", seq=6001, ack=5001)
    assert tcp.r.listing() == [f"tcp      6 431999 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


def test_syn_recv_synack_retransmit_with_new_seq_ignored():
    """The REPLY SYN/ACK cell in SYN_RECV is IGNORE: the new seq is not learnt, so its ACK is invalid."""
    tcp = Tcp(Router())
    tcp.to_state("SYN_RECV")
    assert tcp.server("SA", seq=5500, ack=1001)[1] == EST_REPLY
    assert tcp.client("A", seq=1001, ack=5501)[1] == INVALID
    assert tcp.r.listing() == [f"tcp      6 59 SYN_RECV {TUPLES} mark=0 use=1"]


def test_established_rst_ack_zero_closes():
    """Broken stacks send RST+ACK with ack 0: taken as acknowledging what was seen."""
    tcp = established()
    tcp.server("RA", ack=0)
    assert tcp.r.listing() == [f"tcp      6 9 CLOSE {TUPLES} [ASSURED] mark=0 use=1"]


def test_established_ack_far_below_ignored():
    """IV fails (an overly delayed ACK): let through, nothing updated."""
    tcp = established()
    tcp.client("PA", b"x" * 10)
    assert tcp.server("A", ack=(tcp.c - 100_000) & 0xFFFFFFFF)[1] == EST_REPLY
    assert tcp.r.listing() == [f"tcp      6 299 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


def _unscaled() -> Tcp:
    tcp = Tcp(Router())
    tcp.client("S", options=[("MSS", 1460)])
    tcp.server("SA", options=[("MSS", 1460)])
    tcp.client("A")
    return tcp


def test_established_overshoot_ignored_then_acked():
    """Data a little past the receiver's window is let through and learnt, so its ACK is valid."""
    tcp = _unscaled()
    beyond = tcp.c + 65160 + 10
    assert tcp.client("PA", b"x" * 10, seq=beyond)[1] == EST
    assert tcp.server("A", ack=beyond + 10)[1] == EST_REPLY
    assert tcp.r.listing() == [f"tcp      6 431999 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


def test_established_overshoot_far_invalid():
    tcp = _unscaled()
    assert tcp.client("PA", b"x" * 10, seq=tcp.c + 65160 * 3 - 1)[1] == INVALID


def test_established_overshoot_be_liberal_accepted():
    tcp = Tcp(Router(nf_conntrack_tcp_be_liberal=1))
    tcp.client("S", options=[("MSS", 1460)])
    tcp.server("SA", options=[("MSS", 1460)])
    tcp.client("A")
    assert tcp.client("PA", b"x" * 10, seq=tcp.c + 65160 + 10)[1] == EST
    assert tcp.client("PA", b"x" * 10, seq=tcp.c + 65160 * 3)[1] == EST


def test_established_invalid_fin_refiles_timer():
    """After the entry's first bucket came due (refiled at +5 days), a lowered timeout refiles it."""
    tcp = established()
    tcp.r.table.expire(tcp.r.now + 121)
    tcp.client("R", seq=tcp.c + 300_000)
    tcp.server("FA", seq=tcp.s + 10_000_000)
    assert tcp.r.table.next_deadline() <= tcp.r.now + 300
    assert tcp.r.table.expire(tcp.r.now + 301) == 1


# -- option parsing (kernel: tcp_options, tcp_sack) --------------------------------

@pytest.mark.parametrize("opts,want", [
    (b"", (0, 0)),
    (bytes([3, 3, 7]), (WINDOW_SCALE, 7)),
    (bytes([3, 3, 15]), (WINDOW_SCALE, 14)),                  # clamped to TCP_MAX_WSCALE
    (bytes([4, 2]), (SACK_PERM, 0)),
    (bytes([4, 3, 0]), (0, 0)),                               # wrong length: not SACK-permitted
    (bytes([1, 1, 4, 2, 3, 3, 2]), (SACK_PERM | WINDOW_SCALE, 2)),
    (bytes([0, 4, 2]), (0, 0)),                               # EOL ends the list
    (bytes([8, 1, 4, 2]), (0, 0)),                            # silly length stops parsing
    (bytes([4, 2, 3, 4, 7]), (SACK_PERM, 0)),                 # partial option stops parsing
    (bytes([4, 2, 3]), (SACK_PERM, 0)),                       # no room for the length byte
])
def test_parse_options(opts, want):
    buf = memoryview(b"\xaa" + opts + b"\xbb")
    assert parse_options(buf, 1, len(opts)) == want


def _sack_opt(*edges):
    return bytes([5, 2 + 4 * len(edges)]) + b"".join(e.to_bytes(4, "big") for e in edges)


@pytest.mark.parametrize("opts,sack,want", [
    (_sack_opt(100, 200), 150, 200),
    (_sack_opt(100, 200, 300, 400), 150, 400),
    (_sack_opt(100, 120), 150, 150),                          # not above the ack
    (_sack_opt(0xFFFFFF00, 0x10), 0xFFFFFFF0, 0x10),          # wraps: after() is modular
    (bytes([1, 1]) + _sack_opt(100, 300), 150, 300),
    (bytes([5, 6]) + bytes(4), 150, 150),                     # malformed block size
    (bytes([5, 1, 0, 0]), 150, 150),                          # silly length
    (bytes([1, 5]), 150, 150),                                # no room for the length
    (bytes([0]) + _sack_opt(100, 300), 150, 150),             # after EOL
    (bytes([8, 10]) + bytes(8) + _sack_opt(100, 300), 150, 300),
])
def test_highest_sack(opts, sack, want):
    assert highest_sack(memoryview(opts), 0, len(opts), sack) == want


def test_none_keepalive_pickup_reply_acks_one_more():
    """Picked up on a keepalive (seq one below the next byte): the reply's ACK is td_end + 1."""
    tcp = Tcp(Router())
    tcp.client("A", seq=6999, ack=9000)
    tcp.server("A", seq=9000, ack=7000)
    tcp.client("A", seq=7000, ack=9000)
    assert tcp.r.listing() == [f"tcp      6 431999 ESTABLISHED {TUPLES} [ASSURED] mark=0 use=1"]


def test_fin_wait_late_out_of_window_fin_keeps_timeout():
    """nf_tcp_handle_invalid leaves a timeout already under 120 s alone."""
    tcp = established()
    tcp.client("FA")
    assert tcp.server("FA", seq=tcp.s + 10_000_000, after=5)[1] == INVALID
    assert tcp.r.listing() == [f"tcp      6 114 FIN_WAIT {TUPLES} [ASSURED] mark=0 use=1"]


def test_established_be_liberal_accepts_old_data_and_delayed_ack():
    tcp = established(nf_conntrack_tcp_be_liberal=1)
    tcp.client("PA", b"x" * 100)
    tcp.server("A")
    assert tcp.client("PA", b"y" * 10, seq=(tcp.c - 70_000_000) & 0xFFFFFFFF)[1] == EST     # II
    assert tcp.server("A", ack=(tcp.c - 100_000) & 0xFFFFFFFF)[1] == EST_REPLY             # IV
