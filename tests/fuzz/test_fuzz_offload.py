"""Fuzzing the offload path: random virtio-net headers in front of valid and mutated packets.

The fuzz router's ruleset (helpers, MASQUERADE, DNAT to the TAP side, a
stateful filter) on the unit topology with lan0 and wan0 offloading.
Properties, per frame: no exception escapes process(); exactly one outcome
is counted (forwarded, local, arp, a drop reason) or the fragment is held;
every frame written to an offloading port starts with a header whose
partial checksum, if any, lies inside the packet; every TCP or UDP packet
written complete (to the TAP port, or without NEEDS_CSUM) that came from a
consistent frame carries a valid checksum.
"""
import random
import struct

import fuzz_harness as H
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packets import H1, H2, LAN_TAP, LAN_TUN, R_LAN, R_TAP, R_WAN, ROUTER_MAC, SRV, WAN, ip_bytes
from scapy.all import IP, TCP, UDP, Raw, raw

from tunrouter.core.hooks import engine_for
from tunrouter.core.port import Kind, PortSpec
from tunrouter.core.router import Router
from tunrouter.wire.checksum import csum_ok
from tunrouter.wire.l4 import PSEUDO

VNET = struct.Struct("=BBHHHH")
FUZZ = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def offload_router(mtu_wan: int) -> Router:
    r = Router([PortSpec(LAN_TUN, "lan0", Kind.TUN, ip_bytes(R_LAN), 24, offload=True),
                PortSpec(LAN_TAP, "lan1", Kind.TAP, ip_bytes(R_TAP), 24, mac=ROUTER_MAC),
                PortSpec(WAN, "wan0", Kind.TUN, ip_bytes(R_WAN), 24, mtu=mtu_wan, offload=True)])
    r.binder.rng = random.Random(0)
    r.set_rules(engine_for(H.RULES))
    return r


def pseudo_sum(b: bytes) -> int:
    hlen = (b[0] & 0x0F) << 2
    s = int.from_bytes(PSEUDO.pack(b[12:16], b[16:20], 0, b[9], len(b) - hlen), "big") % 0xFFFF
    return s or 0xFFFF


def l4_ok(ip: bytes) -> bool:
    hlen = (ip[0] & 0x0F) << 2
    seg = ip[hlen:]
    if ip[9] == 17 and seg[6:8] == b"\0\0":
        return True
    data = PSEUDO.pack(ip[12:16], ip[16:20], 0, ip[9], len(seg)) + seg + b"\0" * (len(seg) & 1)
    return csum_ok(data)


@st.composite
def frames(draw):
    """(port, frame bytes, consistent): a header and a TCP or UDP packet, sometimes mutated."""
    src, dst, port = draw(st.sampled_from([(H1, SRV, LAN_TUN), (SRV, R_WAN, WAN), (H1, H2, LAN_TUN),
                                           (SRV, H1, WAN)]))
    size = draw(st.sampled_from([0, 1, 100, 1448, 3000, 9000]))
    payload = Raw(b"p" * size)
    df = draw(st.booleans())
    if draw(st.booleans()):
        l4 = TCP(sport=draw(st.sampled_from([40000, 21, 80])),
                 dport=draw(st.sampled_from([80, 21, 8080])), flags=draw(st.sampled_from(
                     ["S", "A", "PA", "FPA", "SA", "R", "PAC"])), seq=1000, ack=1)
    else:
        l4 = UDP(sport=draw(st.sampled_from([5000, 69])), dport=draw(st.sampled_from([53, 69, 10080])))
    b = bytearray(raw(IP(src=src, dst=dst, flags="DF" if df else 0) / l4 / payload))
    hlen, proto = 20, b[9]
    check = hlen + (16 if proto == 6 else 6)
    l4_len = hlen + (20 if proto == 6 else 8)
    flags = draw(st.sampled_from([0, 1, 1, 2, 3]) | st.integers(0, 255))
    gso_type = draw(st.sampled_from([0, 0, 1 if proto == 6 else 5, 0x81, 3, 4]) | st.integers(0, 255))
    gso_size = draw(st.sampled_from([0, 1, 536, 1200, 1448]) | st.integers(0, 65535))
    start = draw(st.sampled_from([hlen, hlen, 0, l4_len, len(b)]) | st.integers(0, 65535))
    offset = draw(st.sampled_from([check - hlen, 16, 6, 0]) | st.integers(0, 65535))
    if flags & 1 and start == hlen and offset == check - hlen:
        b[check:check + 2] = pseudo_sum(bytes(b)).to_bytes(2, "big")
    consistent = not (flags & 1) or (start == hlen and offset == check - hlen)
    if draw(st.booleans()):
        for _ in range(draw(st.integers(1, 4))):
            b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
        consistent = False
    return port, VNET.pack(flags, gso_type, l4_len, gso_size, start, offset) + bytes(b), consistent


@FUZZ
@given(st.lists(frames(), min_size=1, max_size=6), st.sampled_from([1500, 1280, 576]))
def test_random_headers_never_break_the_core(batch, mtu_wan):
    r = offload_router(mtu_wan)
    c = r.counters
    t = 1000.0
    for port, data, consistent in batch:
        t += 0.01
        before = (c.forwarded, c.local, c.arp, sum(c.drops), r.defrag.reqds)
        out = r.process(port, memoryview(bytearray(data)), t)
        after = (c.forwarded, c.local, c.arp, sum(c.drops), r.defrag.reqds)
        moved = [b - a for a, b in zip(before, after)]
        assert sorted(moved) == [0, 0, 0, 0, 1], (data.hex(), moved)
        for out_port, frame in out:
            frame = bytes(frame)
            if r._vnet[out_port]:
                flags, _gt, _hl, _gs, start, offset = VNET.unpack_from(frame)
                ip = frame[VNET.size:]
                if flags & 1:
                    assert start + offset + 2 <= len(ip)
                    continue
            else:
                ip = frame[14:] if frame[12:14] == b"\x08\x00" else None
                if ip is None:
                    continue                                 # ARP
            assert ip[0] >> 4 == 4 and csum_ok(ip[:(ip[0] & 0xF) * 4])
            frag = int.from_bytes(ip[6:8], "big") & 0x3FFF
            if consistent and ip[9] in (6, 17) and not frag and ip[20:22] != b"":
                assert l4_ok(ip), ip.hex()
        if r.next_deadline() <= t:
            r.tick(t)
