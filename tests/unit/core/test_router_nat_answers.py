"""The router's own answers (errors, REJECT's reset) belong to the packet they answer
(the kernel's nf_ct_attach), so NAT translates them back even on a connection's first packet."""
from packets import R_WAN, SRV, WAN, make_router, parse_out, tcp4
from scapy.all import ICMP, TCP, IPerror, TCPerror

from tunrouter.core.hooks import engine_for

NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan0 -p tcp --dport 8080 -j DNAT --to-destination 10.1.0.2:80
COMMIT
"""
REJECT = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp --dport 80 -j REJECT --reject-with {}
COMMIT
"""


def router(text):
    r = make_router()
    r.set_rules(engine_for(text))
    return r


def test_reject_reset_of_a_forwarded_port_comes_from_the_public_address():
    r = router(NAT + REJECT.format("tcp-reset"))
    (port, frame), = r.process(WAN, tcp4(SRV, R_WAN, 4444, 8080), 0.0)
    p = parse_out(frame)
    assert port == WAN
    assert (p.src, p[TCP].sport, p.dst, p[TCP].dport, str(p[TCP].flags)) == \
           (R_WAN, 8080, SRV, 4444, "RA")
    assert r.conntrack.count() == 0            # the refused first packet left no entry


def test_reject_port_unreachable_quotes_the_public_address():
    r = router(NAT + REJECT.format("icmp-port-unreachable"))
    (port, frame), = r.process(WAN, tcp4(SRV, R_WAN, 4444, 8080), 0.0)
    p = parse_out(frame)
    assert (p.src, p.dst, p[ICMP].type, p[ICMP].code) == (R_WAN, SRV, 3, 3)
    assert (p[IPerror].src, p[IPerror].dst, p[TCPerror].sport, p[TCPerror].dport) == \
           (SRV, R_WAN, 4444, 8080)


def test_time_exceeded_for_a_forwarded_port_quotes_what_the_sender_sent():
    r = router(NAT)
    (port, frame), = r.process(WAN, tcp4(SRV, R_WAN, 4444, 8080, ttl=1), 0.0)
    p = parse_out(frame)
    assert (p.src, p.dst, p[ICMP].type) == (R_WAN, SRV, 11)
    assert (p[IPerror].dst, p[TCPerror].dport) == (R_WAN, 8080)
    # every checksum right after the translation
    again = p.__class__(bytes(p))
    del again.chksum, again[ICMP].chksum, again[IPerror].chksum
    again = p.__class__(bytes(again))
    assert (again.chksum, again[ICMP].chksum, again[IPerror].chksum) == \
           (p.chksum, p[ICMP].chksum, p[IPerror].chksum)
