"""UDP tracking: UNREPLIED -> replied -> stream/ASSURED, timeouts, header errors.

Expected lines as Linux 6.18 printed them for the same packets and delays.
"""
from ct_packets import Router, udp_pkt
from tunrouter.conntrack.conn import IPS_ASSURED, CtInfo
from tunrouter.conntrack.events import EventType

TUPLES = ("src=10.0.1.2 dst=10.0.2.2 sport=40001 dport=53 "
          "src=10.0.2.2 dst=10.0.1.2 sport=53 dport=40001")
UNREPLIED = ("src=10.0.1.2 dst=10.0.2.2 sport=40001 dport=53 [UNREPLIED] "
             "src=10.0.2.2 dst=10.0.1.2 sport=53 dport=40001")


def test_none_query_unreplied():
    r = Router()
    assert r.send(udp_pkt("C"))[1] == CtInfo.NEW
    assert r.listing() == [f"udp      17 29 {UNREPLIED} mark=0 use=1"]


def test_unreplied_query_again_still_new():
    r = Router()
    r.send(udp_pkt("C"))
    assert r.send(udp_pkt("C"), after=1)[1] == CtInfo.NEW


def test_unreplied_reply_seen_not_assured():
    """A DNS-style exchange within 2 s stays unassured at 30 s."""
    r = Router()
    r.send(udp_pkt("C"))
    ct, ctinfo = r.send(udp_pkt("S"))
    assert ctinfo == CtInfo.ESTABLISHED_REPLY
    assert not ct.status & IPS_ASSURED
    assert r.listing() == [f"udp      17 29 {TUPLES} mark=0 use=1"]
    assert r.send(udp_pkt("C"))[1] == CtInfo.ESTABLISHED


def test_replied_after_two_seconds_stream_assured():
    r = Router()
    r.send(udp_pkt("C"))
    r.send(udp_pkt("S"))
    ct, _ = r.send(udp_pkt("C"), after=2.3)
    assert ct.status & IPS_ASSURED
    assert r.listing() == [f"udp      17 119 {TUPLES} [ASSURED] mark=0 use=1"]


def test_unreplied_late_reply_not_yet_stream():
    """The packet that sets SEEN_REPLY is still refreshed as unreplied (30 s) ..."""
    r = Router()
    r.send(udp_pkt("C"))
    r.send(udp_pkt("S"), after=2.3)
    assert r.listing() == [f"udp      17 29 {TUPLES} mark=0 use=1"]
    # ... the next one, any direction, makes it a stream.
    r.send(udp_pkt("C"))
    assert r.listing() == [f"udp      17 119 {TUPLES} [ASSURED] mark=0 use=1"]


def test_unreplied_expires_after_30s():
    r = Router()
    r.send(udp_pkt("C"))
    r.table.drain_events()
    assert r.table.next_deadline() == 1030
    assert r.table.expire(1029.9) == 0
    assert r.table.expire(1030.0) == 1
    assert r.table.conns(1030.0) == []
    [destroy] = r.table.drain_events()
    assert (destroy.type, destroy.timeout) == (EventType.DESTROY, None)


def test_unreplied_packet_refreshes_timeout():
    r = Router()
    r.send(udp_pkt("C"))
    r.send(udp_pkt("C"), after=20)
    assert r.table.expire(1030.0) == 0
    assert r.listing(after=9.5) == [f"udp      17 20 {UNREPLIED} mark=0 use=1"]
    assert r.table.expire(1050.0) == 1


def test_stream_expires_after_120s():
    r = Router()
    r.send(udp_pkt("C"))
    r.send(udp_pkt("S"))
    r.send(udp_pkt("C"), after=3)
    assert r.table.expire(r.now + 119) == 0
    assert r.table.expire(r.now + 120) == 1


def test_expired_flow_starts_again_new():
    r = Router()
    r.send(udp_pkt("C"))
    r.table.drain_events()
    assert r.send(udp_pkt("C"), after=31)[1] == CtInfo.NEW
    assert [e.type for e in r.table.drain_events()] == [EventType.DESTROY, EventType.NEW]


def test_stream_timeout_setting():
    r = Router(nf_conntrack_udp_timeout=5, nf_conntrack_udp_timeout_stream=50)
    r.send(udp_pkt("C"))
    assert r.listing() == [f"udp      17 4 {UNREPLIED} mark=0 use=1"]
    r.send(udp_pkt("S"))
    r.send(udp_pkt("C"), after=3)
    assert r.listing() == [f"udp      17 49 {TUPLES} [ASSURED] mark=0 use=1"]


def test_none_bad_checksum_invalid():
    r = Router()
    assert r.send(udp_pkt("C", chksum=0x1234))[1] == CtInfo.INVALID
    assert r.table.reason == "bad checksum"


def test_none_zero_checksum_accepted():
    assert Router().send(udp_pkt("C", chksum=0))[1] == CtInfo.NEW


def test_none_length_beyond_packet_invalid():
    r = Router()
    assert r.send(udp_pkt("C", len=200))[1] == CtInfo.INVALID
    assert r.table.reason == "truncated/malformed packet"


def test_none_length_below_header_invalid():
    r = Router()
    assert r.send(udp_pkt("C", len=7))[1] == CtInfo.INVALID
