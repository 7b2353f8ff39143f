"""The per-connection rewrite plans give the very bytes nat_packet() gives."""
import pytest
from packets import frame
from scapy.all import ICMP, IP, TCP, UDP, Raw

from tunrouter.conntrack.conn import IPS_DST_NAT, IPS_SRC_NAT, Conn
from tunrouter.nat.range import DST, SRC
from tunrouter.nat.rewrite import apply, make_plans, nat_packet


def b(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def conn(proto: int, status: int) -> Conn:
    """10.0.0.2:4000 -> 198.51.100.7:80, source masqueraded to 203.0.113.1:61000 and/or
    destination forwarded to 10.0.0.9:8080 (ICMP: id 4000 -> 61000)."""
    icmp = proto == 1
    dport = 0x0800 if icmp else 80
    orig = (b("10.0.0.2"), b("198.51.100.7"), proto, 4000, dport)
    src = (b("203.0.113.1"), 61000) if status & IPS_SRC_NAT else (b("10.0.0.2"), 4000)
    dst = (b("10.0.0.9"), 8080) if status & IPS_DST_NAT else (b("198.51.100.7"), 80)
    if icmp:
        reply = (dst[0], src[0], proto, src[1], 0)
    else:
        reply = (dst[0], src[0], proto, dst[1], src[1])
    c = Conn(orig, reply)
    c.status = status
    return c


def packet(proto: int, reply: bool, ct: Conn, udp_check=None):
    t = ct.reply if reply else ct.orig
    ip = IP(src=".".join(map(str, t[0])), dst=".".join(map(str, t[1])))
    if proto == 6:
        return frame(ip / TCP(sport=t[3], dport=t[4], flags="A") / Raw(b"data"))
    if proto == 17:
        u = UDP(sport=t[3], dport=t[4]) if udp_check is None else UDP(sport=t[3], dport=t[4],
                                                                         chksum=udp_check)
        return frame(ip / u / Raw(b"data"))
    return frame(ip / ICMP(type=0 if reply else 8, id=t[3]) / Raw(b"data"))


@pytest.mark.parametrize("proto", [6, 17, 1])
@pytest.mark.parametrize("status", [IPS_SRC_NAT, IPS_DST_NAT, IPS_SRC_NAT | IPS_DST_NAT])
@pytest.mark.parametrize("reply", [False, True])
@pytest.mark.parametrize("udp_check", [None, 0])
def test_plans_match_nat_packet(proto, status, reply, udp_check):
    if udp_check == 0 and proto != 17:
        pytest.skip("a zero checksum is UDP's")
    ct = conn(proto, status)
    plans = make_plans(ct)
    for manip in (DST, SRC):                       # PREROUTING, then POSTROUTING
        plan = plans[manip * 2 + reply]
        slow, fast = packet(proto, reply, ct, udp_check), packet(proto, reply, ct, udp_check)
        assert (plan is None) == (not status & [IPS_SRC_NAT, IPS_DST_NAT][manip ^ reply])
        if plan is None:
            continue
        assert apply(fast, plan) == nat_packet(slow, ct, reply, manip)
        assert bytes(fast) == bytes(slow)
