"""ICMP: query/reply tracking, and errors RELATED to what they quote.

Expected lines and verdicts as Linux 6.18 gave them for the same packets.
"""
import pytest
from scapy.compat import raw
from scapy.layers.inet import ICMP, IP
from scapy.packet import Raw

from ct_packets import C, S, Router, Tcp, icmp_error, icmp_pkt, tcp_seg, udp_pkt
from tunrouter.conntrack.conn import CtInfo
from tunrouter.wire import icmp

ECHO = ("src=10.0.1.2 dst=10.0.2.2 type=8 code=0 id=7 "
        "src=10.0.2.2 dst=10.0.1.2 type=0 code=0 id=7")
ECHO_UNREPLIED = ("src=10.0.1.2 dst=10.0.2.2 type=8 code=0 id=7 [UNREPLIED] "
                  "src=10.0.2.2 dst=10.0.1.2 type=0 code=0 id=7")


def test_none_echo_request_new():
    r = Router()
    ct, ctinfo = r.send(icmp_pkt("C", icmp.ECHO_REQUEST))
    assert ctinfo == CtInfo.NEW
    assert (ct.orig[3], ct.orig[4], ct.reply[4]) == (7, 0x0800, 0x0000)
    assert r.listing() == [f"icmp     1 29 {ECHO_UNREPLIED} mark=0 use=1"]


def test_unreplied_echo_reply_keeps_entry():
    """The entry stays after the reply, with its 30 s (older kernels deleted it)."""
    r = Router()
    r.send(icmp_pkt("C", icmp.ECHO_REQUEST))
    assert r.send(icmp_pkt("S", icmp.ECHO_REPLY))[1] == CtInfo.ESTABLISHED_REPLY
    assert r.listing() == [f"icmp     1 29 {ECHO} mark=0 use=1"]
    assert r.send(icmp_pkt("S", icmp.ECHO_REPLY))[1] == CtInfo.ESTABLISHED_REPLY   # duplicate


def test_replied_next_ping_same_id_reuses_entry():
    r = Router()
    first, _ = r.send(icmp_pkt("C", icmp.ECHO_REQUEST, seq=1))
    r.send(icmp_pkt("S", icmp.ECHO_REPLY, seq=1))
    again, ctinfo = r.send(icmp_pkt("C", icmp.ECHO_REQUEST, seq=2), after=1)
    assert (again, ctinfo) == (first, CtInfo.ESTABLISHED)


def test_replied_expires_after_30s():
    r = Router()
    r.send(icmp_pkt("C", icmp.ECHO_REQUEST))
    r.send(icmp_pkt("S", icmp.ECHO_REPLY), after=5)
    assert r.table.expire(r.now + 29.9) == 0
    assert r.table.expire(r.now + 30) == 1


def test_none_timestamp_request_new():
    r = Router()
    r.send(icmp_pkt("C", icmp.TIMESTAMP, data=bytes(12)))
    assert r.listing() == [
        "icmp     1 29 src=10.0.1.2 dst=10.0.2.2 type=13 code=0 id=7 [UNREPLIED] "
        "src=10.0.2.2 dst=10.0.1.2 type=14 code=0 id=7 mark=0 use=1"]


@pytest.mark.parametrize("icmp_type", [icmp.ECHO_REPLY, icmp.TIMESTAMP_REPLY, 9, 10])
def test_none_reply_or_other_type_invalid(icmp_type):
    """An unsolicited reply, or a type with no inverse (router advertisement ...), starts nothing."""
    r = Router()
    assert r.send(icmp_pkt("S", icmp_type))[1] == CtInfo.INVALID
    assert r.listing() == []
    assert r.table.stats.invalid == 1


def test_none_unknown_type_invalid():
    r = Router()
    assert r.send(icmp_pkt("C", 40))[1] == CtInfo.INVALID
    assert (r.table.reason, r.table.stats.error) == ("invalid icmp type", 1)


def test_none_bad_checksum_invalid():
    pkt = icmp_pkt("C", icmp.ECHO_REQUEST)
    pkt["ICMP"].chksum = 0x1234
    r = Router()
    assert r.send(pkt)[1] == CtInfo.INVALID
    assert r.table.reason == "bad hw icmp checksum"


# -- errors (kernel: nf_conntrack_inet_error) --------------------------------

def test_unreplied_udp_port_unreachable_related():
    r = Router()
    query = udp_pkt("C")
    flow, _ = r.send(query)
    events = len(r.table.events)
    ct, ctinfo = r.send(icmp_error(S, C, query))
    assert (ct, ctinfo) == (flow, CtInfo.RELATED_REPLY)
    assert len(r.table.events) == events            # creates and refreshes nothing
    assert r.listing() == [
        "udp      17 29 src=10.0.1.2 dst=10.0.2.2 sport=40001 dport=53 [UNREPLIED] "
        "src=10.0.2.2 dst=10.0.1.2 sport=53 dport=40001 mark=0 use=1"]


def test_replied_error_from_client_side_related_original():
    r = Router()
    r.send(udp_pkt("C"))
    reply = udp_pkt("S")
    r.send(reply)
    assert r.send(icmp_error(C, S, reply))[1] == CtInfo.RELATED


def test_established_frag_needed_quoting_tcp_related():
    tcp = Tcp(Router())
    tcp.to_state("ESTABLISHED")
    quoted = tcp_seg("C", "A", tcp.c, tcp.s)
    assert tcp.r.send(icmp_error(S, C, quoted, code=icmp.FRAG_NEEDED))[1] == CtInfo.RELATED_REPLY


def test_unreplied_time_exceeded_quoting_echo_related():
    r = Router()
    echo = icmp_pkt("C", icmp.ECHO_REQUEST, ident=9)
    r.send(echo)
    assert r.send(icmp_error(S, C, echo, icmp_type=icmp.TIME_EXCEEDED, code=0))[1] == CtInfo.RELATED_REPLY


def test_none_error_quoting_nothing_invalid():
    r = Router()
    assert r.send(icmp_error(S, C, udp_pkt("C")))[1] == CtInfo.INVALID
    assert r.table.reason == "icmp error: quotes no tracked connection"
    assert (r.table.stats.error, r.table.stats.invalid) == (1, 0)


def test_unreplied_error_to_third_host_invalid():
    """Quoting A<->B must not let an error through towards X (outer daddr check)."""
    r = Router()
    query = udp_pkt("C")
    r.send(query)
    assert r.send(icmp_error(S, "10.0.1.99", query))[1] == CtInfo.INVALID
    assert r.table.reason == "outer daddr 10.0.1.99 != inner 10.0.1.2"


def test_unreplied_error_quoting_error_invalid():
    r = Router()
    query = udp_pkt("C")
    r.send(query)
    inner_error = icmp_error(C, S, query, code=1)
    assert r.send(icmp_error(S, C, inner_error))[1] == CtInfo.INVALID


def test_unreplied_error_bad_checksum_invalid():
    r = Router()
    query = udp_pkt("C")
    r.send(query)
    assert r.send(icmp_error(S, C, query, chksum=0x1234))[1] == CtInfo.INVALID


@pytest.mark.parametrize("cut", [0, 10, 20, 22])
def test_unreplied_error_truncated_quote_invalid(cut):
    """The quote must hold an IP header and the 4 port bytes."""
    r = Router()
    query = udp_pkt("C")
    r.send(query)
    truncated = IP(src=S, dst=C) / ICMP(type=3, code=3) / Raw(bytes(raw(query))[:cut])
    assert r.send(truncated)[1] == CtInfo.INVALID


def test_unreplied_error_quoting_later_fragment_invalid():
    r = Router()
    query = udp_pkt("C")
    r.send(query)
    frag = query.copy()
    frag.frag = 10
    assert r.send(icmp_error(S, C, frag))[1] == CtInfo.INVALID


def test_unreplied_error_quoting_generic_flow_related():
    r = Router()
    gre = IP(src=C, dst=S, proto=47) / Raw(b"gre!")
    r.send(gre)
    assert r.send(icmp_error(S, C, gre, code=2))[1] == CtInfo.RELATED_REPLY


@pytest.mark.parametrize("quote_len,want", [(22, CtInfo.INVALID), (24, CtInfo.RELATED_REPLY)])
def test_unreplied_error_quoting_udp_ports(quote_len, want):
    """Two bytes of the quoted UDP header are not enough; four (the ports) are (Linux 6.18)."""
    r = Router()
    query = udp_pkt("C")
    r.send(query)
    err = IP(src=S, dst=C) / ICMP(type=3, code=3) / Raw(bytes(raw(query))[:quote_len])
    assert r.send(err)[1] == want


def test_unreplied_error_quoting_short_echo_invalid():
    """A quoted ICMP header needs its 8 bytes for the id (Linux 6.18: INVALID with 6)."""
    r = Router()
    echo = icmp_pkt("C", icmp.ECHO_REQUEST, ident=9)
    r.send(echo)
    err = IP(src=S, dst=C) / ICMP(type=3, code=1) / Raw(bytes(raw(echo))[:26])
    assert r.send(err)[1] == CtInfo.INVALID


def test_unreplied_error_quoting_short_ip_header_invalid():
    r = Router()
    query = udp_pkt("C")
    r.send(query)
    bad = bytearray(raw(query))
    bad[0] = 0x44                                       # IHL 4: the kernel would read inside the header
    assert r.send(IP(src=S, dst=C) / ICMP(type=3, code=3) / Raw(bytes(bad[:28])))[1] == CtInfo.INVALID
