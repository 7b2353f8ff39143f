"""multiport, iprange, mac, length, ttl, comment, string and addrtype on crafted packets."""
import pytest
from rules_ctx import ETH_HEADER, H1_MAC, ctx, engine, matches
from scapy.all import IP, TCP, UDP, Raw

from tunrouter.rules import FILTER, AddrTypes, Hook
from tunrouter.rules.values import parse_ipv4

PKT = IP(src="10.1.0.2", dst="10.2.0.2", ttl=64) / TCP(sport=40000, dport=443, flags="S")


@pytest.mark.parametrize("rule,hit", [
    ("--dports 80,443", True), ("--dports 80,8000:9000", False), ("--dports 400:500", True),
    ("! --dports 80,443", False), ("--sports 40000", True), ("--sports 443", False),
    ("--ports 40000", True), ("--ports 443", True), ("--ports 1,2", False),
])
def test_multiport(rule, hit):
    assert matches(f"-p tcp -m multiport {rule}", PKT) is hit
    udp = IP(src="10.1.0.2", dst="10.2.0.2") / UDP(sport=40000, dport=443)
    assert matches(f"-p udp -m multiport {rule}", udp) is hit


@pytest.mark.parametrize("rule,hit", [
    ("--src-range 10.1.0.1-10.1.0.9", True), ("--src-range 10.1.0.3-10.1.0.9", False),
    ("! --src-range 10.1.0.3-10.1.0.9", True), ("--dst-range 10.2.0.2", True),
    ("--src-range 10.1.0.1-10.1.0.9 ! --dst-range 10.2.0.0-10.2.255.255", False),
])
def test_iprange(rule, hit):
    assert matches(f"-m iprange {rule}", PKT) is hit


def test_mac_needs_an_ethernet_frame():
    mac = ":".join("%02x" % b for b in H1_MAC)
    assert matches(f"-m mac --mac-source {mac}", PKT, mac_header=ETH_HEADER)
    assert not matches("-m mac --mac-source 02:00:00:00:00:99", PKT, mac_header=ETH_HEADER)
    assert matches("-m mac ! --mac-source 02:00:00:00:00:99", PKT, mac_header=ETH_HEADER)
    # TUN: no link header, so neither the match nor its inverse (kernel: dev->type check).
    assert not matches(f"-m mac --mac-source {mac}", PKT)
    assert not matches("-m mac ! --mac-source 02:00:00:00:00:99", PKT)


@pytest.mark.parametrize("rule,hit", [
    ("-m length --length 40", True), ("-m length --length 41:", False),
    ("-m length ! --length 41:", True), ("-m length --length :100", True),
    ("-m ttl --ttl-eq 64", True), ("-m ttl ! --ttl-eq 64", False), ("-m ttl --ttl-lt 64", False),
    ("-m ttl --ttl-lt 65", True), ("-m ttl --ttl-gt 63", True), ("-m ttl --ttl-gt 64", False),
    ("-m comment --comment anything", True),
])
def test_length_ttl_comment(rule, hit):
    assert matches(rule, PKT) is hit


HTTP = IP(src="10.1.0.2", dst="10.2.0.2") / TCP(sport=40000, dport=80, flags="PA") / Raw(
    b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n")


@pytest.mark.parametrize("rule,hit", [
    ('--algo bm --string "GET /admin"', True), ('--algo kmp --string "GET /admin"', True),
    ('--algo bm --string "get /ADMIN"', False), ('--algo bm --string "get /ADMIN" --icase', True),
    ('--algo kmp --string "get /ADMIN" --icase', True), ('--algo bm ! --string "POST"', True),
    ('--algo bm --hex-string "|0d0a|Host"', True),
    # The pattern starts at byte 40 (IP 20 + TCP 20): a window must hold all of it.
    ('--algo bm --string GET --from 40 --to 43', True),
    ('--algo bm --string GET --from 40 --to 42', False),
    ('--algo bm --string GET --from 41', False),
])
def test_string(rule, hit):
    assert matches(f"-m string {rule}", HTTP) is hit


ROUTER = AddrTypes([("lan0", parse_ipv4("10.1.0.1"), 24), ("wan0", parse_ipv4("203.0.113.1"), 24)])


@pytest.mark.parametrize("dst,types,hit", [
    ("10.1.0.1", "LOCAL", True), ("203.0.113.1", "LOCAL", True), ("10.1.0.255", "BROADCAST", True),
    ("255.255.255.255", "BROADCAST", True), ("0.1.2.3", "BROADCAST", True),
    ("224.0.0.1", "MULTICAST", True), ("10.2.0.2", "UNICAST", True), ("10.2.0.2", "LOCAL", False),
    ("127.0.0.1", "LOCAL", True), ("10.1.0.0", "UNICAST", True),
])
def test_addrtype(dst, types, hit):
    pkt = IP(src="10.1.0.2", dst=dst) / UDP()
    assert matches(f"-m addrtype --dst-type {types}", pkt, addrtypes=ROUTER) is hit
    assert matches(f"-m addrtype ! --dst-type {types}", pkt, addrtypes=ROUTER) is not hit


def test_addrtype_limited_to_the_input_interface():
    """A local address of another port is UNICAST when limited to the input device."""
    pkt = IP(src="10.1.0.2", dst="203.0.113.1") / UDP()
    rule = "-m addrtype --dst-type LOCAL --limit-iface-in"
    assert not matches(rule, pkt, addrtypes=ROUTER, in_name="lan0")
    assert matches(rule, pkt, addrtypes=ROUTER, in_name="wan0")
    e = engine(f"-A INPUT {rule} -j DROP")
    assert e.run(FILTER, Hook.INPUT, ctx(pkt, addrtypes=ROUTER, in_name="wan0")).verdict == "DROP"
