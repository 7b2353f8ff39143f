"""Helper payloads through the router, for all four helpers (FTP, IRC, TFTP, Amanda):
after a real handshake, random and adversarial payloads on the helped connection.
Each packet is forwarded or dropped by the helper (a partial command), nothing
faults, and every expectation left is for a port number, from the connection's peer
or any host, to the client side of its master."""
import fuzz_harness as H
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packets import H1, LAN_TUN, R_WAN, SRV, WAN
from scapy.all import IP, UDP, Raw, raw

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_num = st.one_of(st.integers(0, 2**33).map(lambda n: b"%d" % n),
                 st.sampled_from([b"-1", b"300", b"65536", b"4294967296", b"", b"0"]))
_word = st.sampled_from([b"PORT ", b"EPRT |1|", b"227 (", b"229 (|||", b"PRIVMSG b :\1DCC SEND f ",
                         b"\1DCC CHAT chat ", b"CONNECT DATA ", b" MESG ", b"\0\1", b"\0\2", b",",
                         b".", b"|", b" ", b"\1", b"\r\n", b"\n", b"\r", b"x" * 1400])
payloads = st.lists(st.one_of(_word, _num, st.binary(max_size=8)), min_size=1, max_size=16).map(
    lambda ps: b"".join(ps)[:1400]) | st.binary(min_size=1, max_size=300)

TCP_HELPERS = {"ftp": 21, "irc": 6667}
UDP_HELPERS = {"tftp": 69, "amanda": 10080}


def check(f: H.Feeder, name: str, before: dict):
    r = f.r
    assert not r.guard.faults and not r.guard.disabled
    for e in r.conntrack.expects.all(f.t):
        assert 0 <= e.dport <= 65535 and len(e.dst) == 4
    new = {k: v - before.get(k, 0) for k, v in f.outcomes.items() if v != before.get(k, 0)}
    assert set(new) <= {"forwarded", "helper"}, (name, new)


@FUZZ
@given(st.sampled_from(sorted(TCP_HELPERS)), st.lists(st.tuples(st.booleans(), payloads),
                                                        min_size=1, max_size=8))
def test_tcp_helper_payloads_through_the_router(name, segments):
    f = H.Feeder()
    dport = TCP_HELPERS[name]
    c, s = 1001, 5001
    for port, data in H.tcp_session(40000, dport, [], [])[:3]:
        f.feed(port, data)
    before = dict(f.outcomes)
    for from_client, data in segments:
        if from_client:
            out = f.feed(LAN_TUN, H._tcp(H1, SRV, 40000, dport, "PA", c, s, data))
        else:
            out = f.feed(WAN, H._tcp(SRV, R_WAN, dport, 40000, "PA", s, c, data))
        if out:                     # forwarded: the peer saw it, the stream moves on
            if from_client:
                c += len(data)
            else:
                s += len(data)
    check(f, name, before)


@FUZZ
@given(st.sampled_from(sorted(UDP_HELPERS)), st.lists(st.tuples(st.booleans(), payloads),
                                                        min_size=1, max_size=8))
def test_udp_helper_payloads_through_the_router(name, datagrams):
    f = H.Feeder()
    dport = UDP_HELPERS[name]
    f.feed(LAN_TUN, raw(IP(src=H1, dst=SRV) / UDP(sport=850, dport=dport) / Raw(b"\0\1f\0octet\0")))
    before = dict(f.outcomes)
    for from_client, data in datagrams:
        if from_client:
            f.feed(LAN_TUN, raw(IP(src=H1, dst=SRV) / UDP(sport=850, dport=dport) / Raw(data)))
        else:
            f.feed(WAN, raw(IP(src=SRV, dst=R_WAN) / UDP(sport=dport, dport=850) / Raw(data)))
    check(f, name, before)
