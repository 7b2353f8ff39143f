"""The IPv4 header filter and the protocol matches on crafted packets.

Kernel: ip_tables.c ip_packet_match() and icmp_match(), xt_tcpudp.c.
"""
import pytest
from rules_ctx import ctx, engine, matches
from scapy.all import ICMP, IP, TCP, UDP, Raw

from tunrouter.rules import DROP, FILTER, Hook

SYN = IP(src="10.1.0.2", dst="10.2.0.2") / TCP(sport=40000, dport=22, flags="S")


@pytest.mark.parametrize("rule,hit", [
    ("-s 10.1.0.2", True), ("-s 10.1.0.0/16", True), ("-s 10.2.0.0/16", False),
    ("! -s 10.1.0.0/16", False), ("! -s 10.9.0.0/16", True),
    ("-d 10.2.0.2", True), ("! -d 10.2.0.2", False), ("-d 0.0.0.0/0", True),
    ("-s 10.1.0.2,10.9.9.9", True),
    ("-p tcp", True), ("-p udp", False), ("! -p udp", True), ("-p 6", True), ("-p all", True),
    ("-f", False), ("! -f", True),
    ("-i lan0", True), ("-i lan+", True), ("-i wan+", False), ("! -i lan0", False),
    ("! -i wan+", True), ("-i lan", False),
])
def test_ip_filter(rule, hit):
    assert matches(rule, SYN, in_name="lan0") is hit


def test_out_interface_in_forward():
    assert matches("-o wan0", SYN, chain="FORWARD", out_name="wan0")
    assert not matches("-o wan0", SYN, chain="FORWARD", out_name="wan1")
    assert matches("-i lan0 ! -o lan+", SYN, chain="FORWARD", out_name="wan1")


def test_fragment_flag_matches_later_fragments_only():
    later = IP(src="10.1.0.2", dst="10.2.0.2", frag=10, flags="MF", proto=6) / Raw(b"x" * 16)
    first = IP(src="10.1.0.2", dst="10.2.0.2", flags="MF") / TCP() / Raw(b"x" * 16)
    assert matches("-f", later) and not matches("-f", first)
    assert matches("! -f", first) and not matches("! -f", later)


@pytest.mark.parametrize("rule,hit", [
    ("--dport 22", True), ("--dport 23", False), ("! --dport 23", True), ("--dport 20:30", True),
    ("--sport 40000:", True), ("--sport :1023", False), ("! --sport :1023", True),
    ("--syn", True), ("! --syn", False), ("--tcp-flags SYN,ACK SYN", True),
    ("--tcp-flags ALL SYN", True), ("--tcp-flags ALL NONE", False),
    ("--tcp-option 2", True), ("--tcp-option 8", False), ("! --tcp-option 8", True),
])
def test_tcp(rule, hit):
    pkt = IP(src="10.1.0.2", dst="10.2.0.2") / TCP(sport=40000, dport=22, flags="S",
                                                   options=[("MSS", 1460), ("NOP", None)])
    assert matches(f"-p tcp {rule}", pkt) is hit


def test_tcp_flags_on_synack_and_ack():
    synack = IP() / TCP(flags="SA")
    assert not matches("-p tcp --syn", synack)
    assert matches("-p tcp --tcp-flags SYN,ACK SYN,ACK", synack)
    assert matches("-p tcp ! --syn", IP() / TCP(flags="A"))


def test_tcp_short_header_is_dropped():
    """xt_tcpudp: 'we've been asked to examine this packet, and we can't': hotdrop."""
    cut = IP(src="10.1.0.2", dst="10.2.0.2", proto=6) / Raw(b"\x9c\x40\x00\x16" + b"\0" * 8)
    e = engine("-A INPUT -p tcp --dport 22 -j ACCEPT")
    assert e.run(FILTER, Hook.INPUT, ctx(cut)) is DROP
    assert e.hotdrops == 1


def test_tcp_second_fragment_at_offset_1_is_dropped():
    evil = IP(src="10.1.0.2", dst="10.2.0.2", proto=6, frag=1) / Raw(b"\0" * 16)
    e = engine("-A INPUT -p tcp --dport 22 -j ACCEPT")
    assert e.run(FILTER, Hook.INPUT, ctx(evil)) is DROP
    later = IP(src="10.1.0.2", dst="10.2.0.2", proto=6, frag=2) / Raw(b"\0" * 16)
    assert e.run(FILTER, Hook.INPUT, ctx(later)).verdict == "ACCEPT"   # policy; rule did not match
    assert e.counters("filter", "INPUT", 0) == (0, 0)


@pytest.mark.parametrize("rule,hit", [
    ("--dport 53", True), ("--sport 5353", True), ("! --dport 53", False),
    ("--dport 1:52", False), ("--dport domain", True),
])
def test_udp(rule, hit):
    pkt = IP(src="10.1.0.2", dst="10.2.0.2") / UDP(sport=5353, dport=53)
    assert matches(f"-p udp {rule}", pkt) is hit


@pytest.mark.parametrize("icmp,rule,hit", [
    (ICMP(type=8), "echo-request", True), (ICMP(type=0), "echo-request", False),
    (ICMP(type=0), "pong", True), (ICMP(type=3, code=3), "port-unreachable", True),
    (ICMP(type=3, code=3), "destination-unreachable", True),
    (ICMP(type=3, code=1), "port-unreachable", False), (ICMP(type=3, code=4), "3/4", True),
    (ICMP(type=11, code=0), "any", True), (ICMP(type=11), "! 11", False),
    (ICMP(type=12), "! 11", True),
])
def test_icmp(icmp, rule, hit):
    inv, _, name = rule.rpartition(" ")
    opt = f"{inv} --icmp-type {name}".strip()
    assert matches(f"-p icmp {opt}", IP(src="10.1.0.2", dst="10.2.0.2") / icmp) is hit
