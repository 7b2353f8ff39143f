"""Generic tracking: protocols without a tracker here (600 s, no ports, never ASSURED)."""
from scapy.layers.inet import IP
from scapy.packet import Raw

from ct_packets import C, S, Router
from tunrouter.conntrack.conn import IPS_ASSURED, CtInfo


def ip_proto(src: str, dst: str, proto: int):
    return IP(src=src, dst=dst, proto=proto) / Raw(b"abcd")


def test_none_proto_253_new():
    r = Router()
    ct, ctinfo = r.send(ip_proto(C, S, 253))
    assert ctinfo == CtInfo.NEW
    assert (ct.orig[3:], ct.reply[3:]) == ((0, 0), (0, 0))


def test_unreplied_reply_established_never_assured():
    r = Router()
    r.send(ip_proto(C, S, 253))
    ct, ctinfo = r.send(ip_proto(S, C, 253), after=5)
    assert ctinfo == CtInfo.ESTABLISHED_REPLY
    assert not ct.status & IPS_ASSURED
    assert r.listing() == ["unknown  253 599 src=10.0.1.2 dst=10.0.2.2 src=10.0.2.2 dst=10.0.1.2 mark=0 use=1"]


def test_unreplied_expires_after_600s():
    r = Router()
    r.send(ip_proto(C, S, 50))
    assert r.table.expire(r.now + 599.9) == 0
    assert r.table.expire(r.now + 600) == 1


def test_generic_timeout_setting():
    r = Router(nf_conntrack_generic_timeout=60)
    r.send(ip_proto(C, S, 50))
    assert r.listing() == [
        "unknown  50 59 src=10.0.1.2 dst=10.0.2.2 [UNREPLIED] src=10.0.2.2 dst=10.0.1.2 mark=0 use=1"]


def test_gre_unreplied_then_stream_and_assured():
    r = Router()
    r.send(ip_proto(C, S, 47))
    assert r.listing() == [
        "gre      47 29 src=10.0.1.2 dst=10.0.2.2 srckey=0x0 dstkey=0x0 [UNREPLIED] "
        "src=10.0.2.2 dst=10.0.1.2 srckey=0x0 dstkey=0x0 mark=0 use=1"]
    r.send(ip_proto(S, C, 47))          # the first reply is judged before SEEN_REPLY is set
    assert r.listing()[0].startswith("gre      47 29 ") and "[ASSURED]" not in r.listing()[0]
    r.send(ip_proto(C, S, 47))
    assert r.listing()[0].startswith("gre      47 179 ") and "[ASSURED]" in r.listing()[0]


def test_gre_timeout_settings():
    r = Router(nf_conntrack_gre_timeout=5, nf_conntrack_gre_timeout_stream=50)
    r.send(ip_proto(C, S, 47))
    assert r.listing()[0].startswith("gre      47 4 ")
    r.send(ip_proto(S, C, 47))
    r.send(ip_proto(C, S, 47))
    assert r.listing()[0].startswith("gre      47 49 ")


def test_none_protocols_are_separate_flows():
    r = Router()
    r.send(ip_proto(C, S, 50))
    r.send(ip_proto(C, S, 51))
    assert len(r.table.conns(r.now)) == 2
