"""Properties: track() never raises on what a valid IPv4 header may carry, and the table stays consistent.

Packets are built with struct here (no scapy) so that Hypothesis can
generate thousands cheaply; TCP and UDP checksums are filled in, or left
wrong when checksum verification is off.
"""
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunrouter.conntrack.conn import IPS_CONFIRMED, CtInfo
from tunrouter.conntrack.settings import Settings
from tunrouter.conntrack.table import ConnTable
from tunrouter.core.desc import PacketDesc, parse
from tunrouter.wire import ipv4
from tunrouter.wire.l4 import l4_csum

HOSTS = (bytes([10, 0, 1, 2]), bytes([10, 0, 2, 2]))


def packet(proto: int, src: bytes, dst: bytes, payload: bytes) -> PacketDesc:
    d = parse(memoryview(bytearray(ipv4.emit(0, 0, 0, 64, proto, src, dst, payload))), 0)
    assert isinstance(d, PacketDesc)
    return d


def check_consistent(t: ConnTable, now: float) -> None:
    """Every live entry is reachable by both tuples; the count matches the dict."""
    live = t.conns(now)
    for ct in live:
        assert ct.status & IPS_CONFIRMED
        assert t.lookup(ct.orig, now)[0] is ct
        assert t.lookup(ct.reply, now)[0] is ct
    assert t.count() == len({id(ct) for ct in t._conns.values()})
    assert len(t.events) <= t.events_max


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(proto=st.sampled_from([1, 6, 17]) | st.integers(0, 255), payload=st.binary(max_size=80),
       checksum=st.integers(0, 1))
def test_track_never_raises_on_arbitrary_l4(proto, payload, checksum):
    t = ConnTable(Settings(nf_conntrack_checksum=checksum))
    d = packet(proto, HOSTS[0], HOSTS[1], payload)
    ct, ctinfo = t.track(d, 100.0)
    assert ctinfo in CtInfo
    assert (ct is None) == (ctinfo in (CtInfo.INVALID, CtInfo.DROP))
    if ctinfo == CtInfo.NEW:
        assert t.confirm(ct, 100.0)
    check_consistent(t, 100.0)


# A TCP segment from a small, collision-prone space, so that sequences of them
# walk through the state machine instead of each starting a new flow.
_seq = st.sampled_from([0, 1, 1000, 1001, 1101, 5000, 5001, 0x7FFFFFFF, 0xFFFFFFFF]) | st.integers(0, 2**32 - 1)
_options = st.sampled_from([
    b"",
    bytes([2, 4, 5, 180, 4, 2, 3, 3, 7, 0]) + b"\0\0",           # MSS, SACK-permitted, wscale 7
    bytes([1, 1, 8, 10]) + bytes(8),                             # timestamps
    bytes([1, 1, 5, 10]) + struct.pack("!II", 1000, 1101),       # one SACK block
    bytes([1, 1, 5, 18]) + bytes(16),                            # two blocks
    bytes([5, 1, 0, 0]), bytes([3, 9, 9, 9]), bytes([1, 0, 0, 0]),  # silly and partial options
])
tcp_segment = st.builds(
    lambda sport, dport, seq, ack, flags, win, opts, data: (
        struct.pack("!HHIIBBHHH", sport, dport, seq, ack, (5 + len(opts) // 4) << 4, flags, win, 0, 0)
        + opts + data),
    st.sampled_from([40000, 80]), st.sampled_from([40000, 80]), _seq, _seq,
    st.sampled_from([0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x01, 0x00, 0x03, 0x06, 0x29]) | st.integers(0, 255),
    st.sampled_from([0, 1, 502, 65535]), _options, st.binary(max_size=20))
udp_datagram = st.builds(
    lambda sport, dport, data: struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data,
    st.sampled_from([53, 5353]), st.sampled_from([53, 5353]), st.binary(max_size=8))
icmp_message = st.builds(
    lambda t, code, ident, rest: struct.pack("!BBHH", t, code, 0, ident) + rest,
    st.sampled_from([0, 3, 8, 11, 13, 14]) | st.integers(0, 255), st.integers(0, 4),
    st.sampled_from([7, 9]), st.binary(max_size=40))

step = st.tuples(
    st.sampled_from([6, 17, 1, 47]),
    st.booleans(),                                       # which host sends
    tcp_segment, udp_datagram, icmp_message,
    st.sampled_from([0.0, 0.0, 0.5, 3.0, 31.0, 700.0]),  # time before the packet
    st.booleans(),                                       # the rules accept a NEW packet
)


def _payload(proto, tcp, udp, icmp_msg, src, dst, fix_checksum):
    if proto == 6:
        raw = bytearray(tcp)
        if fix_checksum:
            raw[16:18] = l4_csum(src, dst, 6, raw).to_bytes(2, "big")
        return bytes(raw)
    if proto == 17:
        raw = bytearray(udp)
        if fix_checksum:
            raw[6:8] = l4_csum(src, dst, 17, raw).to_bytes(2, "big")
        return bytes(raw)
    if proto == 1:
        return icmp_msg
    return b"gre!"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, max_size=40), checksum=st.integers(0, 1), liberal=st.integers(0, 1),
       loose=st.integers(0, 1), limit=st.sampled_from([0, 2, 65536]))
def test_packet_sequences_keep_table_consistent(steps, checksum, liberal, loose, limit):
    t = ConnTable(Settings(nf_conntrack_checksum=checksum, nf_conntrack_tcp_be_liberal=liberal,
                           nf_conntrack_tcp_loose=loose, nf_conntrack_max=limit), events_max=64)
    now = 1000.0
    for proto, flip, tcp, udp, icmp_msg, wait, accept in steps:
        now += wait
        src, dst = HOSTS[::-1] if flip else HOSTS
        d = packet(proto, src, dst, _payload(proto, tcp, udp, icmp_msg, src, dst, fix_checksum=not checksum))
        ct, ctinfo = t.track(d, now)
        assert ctinfo in CtInfo
        if ctinfo == CtInfo.NEW and accept:
            t.confirm(ct, now)
        t.expire(now)
        if limit:
            assert t.count() <= limit
        check_consistent(t, now)
        t.drain_events()
    t.expire(now + 10 * 432000)
    assert t.count() == 0 and t.conns(now + 10 * 432000) == []
