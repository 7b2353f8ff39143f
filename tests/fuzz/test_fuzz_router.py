"""Fuzzing the sans-IO core through every hook, rules, NAT and helpers on.

Properties (fuzz_harness.Feeder): no exception escapes process() or tick();
every frame is forwarded, answered locally, handled as ARP, dropped with a
named reason, or held for reassembly -- exactly one; the counters add up over
the run; what the router writes is well-formed; no built-in helper faults.

The short runs belong to the normal suite; test_long_run (marked slow, run
with `pytest -m slow tests/fuzz`) feeds over a million packets.
"""
import itertools
import os
import random
import time

import fuzz_harness as H
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packets import H1, H2, H2_MAC, LAN_TAP, R_LAN, R_TAP, R_WAN, SRV
from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, Raw, raw

FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_CORPUS = H.corpus(0)

# -- strategies built from Scapy layers -------------------------------------------

addrs = st.sampled_from([H1, H2, SRV, R_LAN, R_TAP, R_WAN, "10.1.0.255", "255.255.255.255",
                         "127.0.0.1", "0.0.0.0", "224.0.0.1", "198.51.100.7", "192.0.2.1"])
ports = st.sampled_from([21, 69, 6667, 10080, 8080, 80, 22, 25, 137, 5353, 0, 65535]) \
    | st.integers(0, 65535)
ip_options = st.lists(st.sampled_from([
    b"\x01", b"\x00", b"\x94\x04\x00\x00",                  # NOP, EOL, router alert
    b"\x07\x07\x04\x00\x00\x00\x00",                         # record route
    b"\x83\x03\x04", b"\x44\x02", b"\x07\xff", b"\x89\x00", b"\x01" * 40]),
    min_size=1, max_size=4).map(b"".join)


def with_options(data: bytes, options: bytes) -> bytes:
    """Insert raw IP options (padded to 32 bits, cut at 40 bytes) after the fixed header."""
    options = (options + b"\0" * (-len(options) % 4))[:40]
    b = bytearray(data[:20] + options + data[20:])
    b[0] = 0x40 | (20 + len(options)) // 4
    b[2:4] = min(len(b), 65535).to_bytes(2, "big")
    b[10:12] = b"\0\0"
    b[10:12] = H.csum(b[:20 + len(options)]).to_bytes(2, "big")
    return bytes(b)


@st.composite
def ip_layer(draw, proto=None):
    kw = dict(src=draw(addrs), dst=draw(addrs), ttl=draw(st.sampled_from([0, 1, 2, 64, 255])),
              id=draw(st.integers(0, 65535)), tos=draw(st.integers(0, 255)),
              flags=draw(st.sampled_from([0, 1, 2, 3, 4])),
              frag=draw(st.sampled_from([0, 0, 0, 1, 8, 100, 8191])))
    if proto is not None:
        kw["proto"] = proto
    return IP(**kw)


tcp_options = st.lists(st.sampled_from([("MSS", 1460), ("MSS", 0), ("WScale", 14), ("WScale", 255),
                                        ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None),
                                        ("SAck", (1, 2)), ("EOL", None)]), max_size=5)
payloads = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"PORT 10,1,0,2,195,80\r\n", b"227 Entering Passive Mode (203,0,113,80,4,1)\r\n",
                     b"PRIVMSG b :\1DCC SEND f 167837698 5000 1\1\r\n", b"\0\1f\0octet\0",
                     b"CONNECT DATA 50012 MESG 50013\n", b"EPRT |1|10.1.0.2|300|\r\n",
                     b"PORT 10,1,0,2,300,80\r\n", b"PORT " + b"9" * 3000 + b"\r\n"]))


@st.composite
def l4(draw):
    kind = draw(st.sampled_from(["tcp", "udp", "icmp", "icmp-error", "other"]))
    if kind == "tcp":
        return TCP(sport=draw(ports), dport=draw(ports), seq=draw(st.integers(0, 2**32 - 1)),
                   ack=draw(st.integers(0, 2**32 - 1)), flags=draw(st.integers(0, 255)),
                   options=draw(tcp_options), window=draw(st.integers(0, 65535))) / Raw(draw(payloads))
    if kind == "udp":
        return UDP(sport=draw(ports), dport=draw(ports)) / Raw(draw(payloads))
    if kind == "icmp":
        return ICMP(type=draw(st.integers(0, 255)), code=draw(st.integers(0, 20)),
                    id=draw(st.integers(0, 65535))) / Raw(draw(st.binary(max_size=32)))
    if kind == "icmp-error":
        # an error quoting one of the valid flow's packets, perhaps cut short
        _port, quoted = draw(st.sampled_from(_CORPUS))
        quoted = quoted[14:] if _port == LAN_TAP else quoted
        quoted = quoted[:draw(st.sampled_from([8, 20, 28, 40, 576]))]
        return ICMP(type=draw(st.sampled_from([3, 4, 5, 11, 12])), code=draw(st.integers(0, 15))) \
            / Raw(quoted)
    return Raw(draw(st.binary(max_size=40)))


@st.composite
def scapy_frames(draw):
    """(port, frame bytes): an IPv4 packet, an ARP message or a non-IP frame."""
    port = draw(st.sampled_from(H.PORTS))
    if port == LAN_TAP and draw(st.integers(0, 5)) == 0:
        pkt = Ether(src=H2_MAC, dst=draw(st.sampled_from([H.MAC, "ff:ff:ff:ff:ff:ff",
                                                           "02:00:00:00:00:99"]))) / ARP(
            op=draw(st.integers(0, 3)), hwsrc=draw(st.sampled_from([H2_MAC, "01:00:5e:00:00:01"])),
            psrc=draw(addrs), pdst=draw(addrs))
        return port, raw(pkt)
    upper = draw(l4())
    pkt = draw(ip_layer(proto=draw(st.sampled_from([None, None, None, 6, 17, 1, 47])))) / upper
    data = raw(pkt)
    if draw(st.integers(0, 3)) == 0:
        data = with_options(data, draw(ip_options))
    if port == LAN_TAP:
        data = raw(Ether(src=H2_MAC, dst=H.MAC)) + data
    return port, data


@st.composite
def mutated(draw):
    port, data = draw(st.sampled_from(_CORPUS))
    return port, H.mutate(port, data, random.Random(draw(st.integers(0, 2**32))))


@st.composite
def scenario(draw):
    """A valid flow prefix, then a mix of Scapy-built, mutated and valid frames, with pauses."""
    n = draw(st.integers(0, len(_CORPUS)))
    frames = list(_CORPUS[:n])
    frames += draw(st.lists(st.one_of(scapy_frames(), mutated(), st.sampled_from(_CORPUS),
                                      st.floats(0, 40).map(lambda dt: ("pause", dt))),
                            min_size=1, max_size=25))
    return frames


@FUZZ
@given(scenario())
def test_no_packet_escapes_accounting(frames):
    f = H.Feeder()
    for port, data in frames:
        if port == "pause":
            f.advance(data)
        else:
            f.feed(port, data)
    f.check_totals()


def test_valid_flows_reach_the_helpers():
    """The corpus really exercises conntrack, NAT and the helpers: expectations are
    made for FTP, IRC, TFTP and Amanda and the port forward answers."""
    f = H.Feeder()
    seen = set()
    for port, data in _CORPUS:
        f.feed(port, data)
        seen |= {e.helper.name for e in f.r.conntrack.expects.all(f.t)}
    assert seen >= {"ftp", "irc", "tftp", "amanda"}
    assert f.outcomes["forwarded"] > 30 and f.held > 0 and not f.r.guard.faults


def run(seed: int, n: int) -> H.Feeder:
    f = H.Feeder()
    for port, data in itertools.islice(H.Generator(seed), n):
        f.feed(port, data)
    f.advance(3600.0)                       # every timer fires: reassembly, ARP, conntrack
    f.check_totals()
    return f


def test_short_random_run():
    f = run(seed=1, n=8_000)
    assert f.packets == 8_000


@pytest.mark.slow
def test_long_run():
    n = int(os.environ.get("TUNROUTER_FUZZ_PACKETS", 1_000_000))
    seed = int(os.environ.get("TUNROUTER_FUZZ_SEED", 20261122))
    t = time.perf_counter()
    f = run(seed, n)
    dt = time.perf_counter() - t
    print(f"\n{f.packets} packets in {dt:.1f} s: {f.packets / dt:.0f} packets/s; outcomes {f.outcomes}")
    assert f.packets == n
