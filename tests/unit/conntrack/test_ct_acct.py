"""nf_conntrack_acct: per-connection packet and byte counters, as conntrack -L shows them."""
from packets import H1, LAN_TUN, SRV, WAN, icmp_echo, make_router, udp4

from tunrouter.conntrack.format import list_line


def test_counters_per_direction_in_the_list_line():
    r = make_router()
    r.conntrack.settings.set("nf_conntrack_acct", 1)
    r.process(LAN_TUN, udp4(H1, SRV, 5000, 53, b"abc"), 0.0)
    r.process(LAN_TUN, udp4(H1, SRV, 5000, 53, b"abcd"), 0.1)
    r.process(WAN, udp4(SRV, H1, 53, 5000, b"reply"), 0.2)
    ct, = r.conntrack.conns(0.3)
    assert ct.acct == [2, 31 + 32, 1, 33]
    line = list_line(ct, 0.3)
    assert "sport=5000 dport=53 packets=2 bytes=63 src=203.0.113.80" in line
    assert line.endswith("sport=53 dport=5000 packets=1 bytes=33 mark=0 use=1")


def test_off_by_default_and_unreplied_goes_after_the_counters():
    r = make_router()
    r.process(LAN_TUN, icmp_echo(H1, SRV), 0.0)
    ct, = r.conntrack.conns(0.1)
    assert ct.acct is None and "packets=" not in list_line(ct, 0.1)
    r.conntrack.settings.set("nf_conntrack_acct", 1)
    r.process(LAN_TUN, icmp_echo(H1, SRV, ident=9), 0.2)
    line = next(list_line(c, 0.3) for c in r.conntrack.conns(0.3) if c.orig[3] == 9)
    assert "id=9 packets=1 bytes=32 [UNREPLIED] src=" in line
