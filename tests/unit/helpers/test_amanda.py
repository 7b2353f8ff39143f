"""The Amanda parser as the kernel reads it (nf_conntrack_amanda.c), one packet at a time."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.all import IP

from tunrouter.helpers.amanda import Amanda
from tunrouter.helpers.base import ORIGINAL, REPLY, TCP, UDP, Packet

SERVER, CLIENT, WAN = bytes([10, 1, 0, 2]), bytes([203, 0, 113, 80]), bytes([203, 0, 113, 1])
ORIG = (SERVER, CLIENT, UDP, 850, 10080)
REPLY_T = (CLIENT, WAN, UDP, 10080, 850)


def pkt(payload: bytes, direction=REPLY) -> Packet:
    tup, other = (REPLY_T, ORIG) if direction == REPLY else (ORIG, REPLY_T)
    return Packet(payload, direction, None, tup, other, True, None, True)


def help_(payload: bytes, direction=REPLY):
    return Amanda().help(pkt(payload, direction))


def ports(found) -> list[int]:
    return [] if found is None else [e.dport for e in found.expects]


def test_connect_line_with_every_keyword():
    data = (b"Amanda 2.4 REP HANDLE 000-00000000 SEQ 1\n"
            b"CONNECT DATA 50012 MESG 50013 INDEX 50014 STATE 50015\nOPTIONS features=x;\n")
    found = Amanda().help(pkt(data))
    assert ports(found) == [50012, 50013, 50014, 50015]
    for exp in found.expects:
        assert (exp.proto, exp.src, exp.sport, exp.dst) == (TCP, SERVER, None, CLIENT)
        rw = exp.rewrite
        assert data[rw.start:rw.end] == b"%d" % exp.dport
        assert rw.text(WAN, 40001) == b"40001"


def test_keywords_in_any_order_are_taken_in_the_kernel_order():
    found = help_(b"CONNECT INDEX 3 DATA 1\n")
    assert ports(found) == [1, 3]


def test_only_the_first_line_after_connect():
    assert ports(help_(b"CONNECT DATA 5000\nMESG 5001\n")) == [5000]
    assert help_(b"CONNECT\nDATA 5000\n") is None                     # "CONNECT " needs its space
    assert help_(b"CONNECT DATA 5000") is None                       # no '\n'
    assert help_(b"connect DATA 5000\n") is None                     # case-sensitive


def test_connect_anywhere_and_keyword_inside_a_word():
    assert ports(help_(b"xxCONNECT NODATA 7000\n")) == [7000]


def test_original_direction_is_ignored():
    assert help_(b"CONNECT DATA 50012 MESG 50013\n", direction=ORIGINAL) is None


@pytest.mark.parametrize("line,want", [
    (b"CONNECT DATA 0 MESG 50013\n", []),                 # zero stops everything after
    (b"CONNECT DATA x MESG 50013\n", []),                 # no digits
    (b"CONNECT DATA  5 MESG 50013\n", []),                # a blank first: no digits
    (b"CONNECT DATA 5 MESG 65536 INDEX 7\n", [5]),        # 65536 wraps to 0: stops
    (b"CONNECT DATA 5 MESG 99999 INDEX 7\n", [5, 34463, 7]),   # truncated to 16 bits
    (b"CONNECT DATA 500123\n", [50012]),                  # at most 5 characters read
    (b"CONNECT DATA 5\n", [5]),
    (b"CONNECT DATA \n", []),                             # nothing before the '\n'
    (b"CONNECT MESG 6 DATA\n", [6]),                      # "DATA" without its space: skipped
])
def test_ports(line, want):
    assert ports(help_(line)) == want


def test_rewrite_spans_only_the_digits_read():
    data = b"CONNECT DATA 500123\n"
    exp, = help_(data).expects
    assert data[exp.rewrite.start:exp.rewrite.end] == b"50012"


# -- fuzz ----------------------------------------------------------------------

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(found, data: bytes):
    if found is None:
        return
    assert found.drop is None and found.expects
    assert b"CONNECT " in data
    line_end = data.index(b"\n", data.index(b"CONNECT ") + 8)
    for exp in found.expects:
        assert (exp.proto, exp.src, exp.dst) == (TCP, SERVER, CLIENT)
        assert 1 <= exp.dport <= 65535
        rw = exp.rewrite
        assert 0 < rw.start < rw.end <= line_end and rw.end - rw.start <= 5
        digits = data[rw.start:rw.end]
        assert digits.isdigit() and int(digits) % 65536 == exp.dport


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(data):
    found = help_(data)
    check(found, data)
    assert found is None


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_after_connect(data):
    payload = b"CONNECT " + data
    check(help_(payload), payload)


_num = st.one_of(st.integers(0, 2**40).map(lambda n: b"%d" % n), st.sampled_from(
    [b"", b"-1", b"0", b"00000", b"000001", b"65535", b"65536", b"99999", b"0x10", b" 5", b"\n"]))
_word = st.sampled_from([b"CONNECT ", b"CONNECT", b"connect ", b"DATA ", b"MESG ", b"INDEX ", b"STATE ",
                         b"DATA", b" ", b"\r", b"\n", b"\r\n", b"x" * 5000, b" " * 300, b"\0"])


@FUZZ
@given(st.lists(st.one_of(_word, _num, st.binary(max_size=8)), max_size=16))
def test_fuzz_adversarial(parts):
    data = b"".join(parts)
    check(help_(data), data)
    assert help_(data, direction=ORIGINAL) is None


# -- through the router ----------------------------------------------------------

def _router(nat: str, accept: str):
    from packets import make_router

    from tunrouter.core.hooks import engine_for
    rules = ("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
             "-A PREROUTING -p udp -m udp --dport 10080 -j CT --helper amanda\nCOMMIT\n"
             "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
             ":POSTROUTING ACCEPT [0:0]\n" + nat + "-A POSTROUTING -o wan0 -j MASQUERADE\nCOMMIT\n"
             "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
             "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n" + accept + "COMMIT\n")
    r = make_router()
    r.set_rules(engine_for(rules))
    t = [0.0]

    def go(port, frame):
        t[0] += 0.01
        return [IP(bytes(f)) for _, f in r.process(port, frame, t[0])]
    return r, t, go


def test_amanda_client_behind_a_port_forward_gets_the_server_connections():
    """The backup server on the WAN asks the LAN client (port-forwarded, MASQUERADE out);
    the client's CONNECT ports are expected from the server to the router's address,
    and its TCP connections are RELATED and DNATed to the client's announced ports."""
    from packets import H1, LAN_TUN, R_WAN, SRV, WAN, tcp4, udp4
    from scapy.all import TCP as STCP
    from scapy.all import UDP as SUDP
    from scapy.all import Raw

    from tunrouter.conntrack.format import expect_line
    r, t, go = _router("-A PREROUTING -i wan0 -p udp -m udp --dport 10080 -j DNAT --to-destination 10.1.0.2\n",
                       "-A FORWARD -i wan0 -p udp --dport 10080 -j ACCEPT\n")
    req, = go(WAN, udp4(SRV, R_WAN, 850, 10080, b"Amanda 2.6 REQ HANDLE 1 SEQ 1\nSERVICE sendbackup\n"))
    assert (req.dst, req[SUDP].dport) == (H1, 10080)
    rep = b"Amanda 2.6 REP HANDLE 1 SEQ 1\nCONNECT DATA 50012 MESG 50013 INDEX 50014\n"
    out, = go(LAN_TUN, udp4(H1, SRV, 10080, 850, rep))
    assert (out.src, out.dst) == (R_WAN, SRV)
    assert bytes(out[Raw].load) == rep                      # the ports were free: same text
    chk = out[SUDP].chksum
    del out[SUDP].chksum
    assert IP(bytes(out))[SUDP].chksum == chk
    lines = sorted(expect_line(e, t[0]) for e in r.conntrack.expects.all(t[0]))
    assert [x.split(" master-")[0] for x in lines] == [
        f"180 proto=6 src=203.0.113.80 dst=203.0.113.1 sport=0 dport={p} mask-src=255.255.255.255 "
        f"mask-dst=255.255.255.255 sport=0 dport=65535" for p in (50012, 50013, 50014)]
    assert all(x.endswith("helper=amanda") for x in lines)
    for p in (50014, 50012):
        syn, = go(WAN, tcp4(SRV, R_WAN, 41000 + p % 10, p, "S", seq=9000))
        assert (syn.src, syn.dst, syn[STCP].dport) == (SRV, H1, p)
    # only from the server: another host's SYN to the last expected port opens nothing
    assert r.conntrack.expects.count == 1
    other = go(WAN, tcp4("203.0.113.99", R_WAN, 41000, 50013, "S", seq=9000))
    assert all(p.dst != H1 for p in other)


def test_amanda_server_behind_masquerade_connects_out_related():
    """A LAN backup server asks a WAN client; the reply's ports are expected from the
    server to the client, and the server's connections are RELATED and masqueraded."""
    from packets import H1, LAN_TUN, R_WAN, SRV, WAN, tcp4, udp4
    from scapy.all import TCP as STCP
    from scapy.all import Raw
    r, t, go = _router("", "-A FORWARD -i lan0 -p udp --dport 10080 -j ACCEPT\n")
    assert go(LAN_TUN, udp4(H1, SRV, 850, 10080, b"REQ\n"))
    rep = b"CONNECT DATA 50012 MESG 50013 STATE 50012\n"
    out, = go(WAN, udp4(SRV, R_WAN, 10080, 850, rep))
    assert out.dst == H1 and bytes(out[Raw].load) == rep
    # the same port twice: the same expectation of the same master, replaced (kernel)
    exps = r.conntrack.expects.all(t[0])
    assert sorted((e.src, e.dst, e.dport) for e in exps) == [
        (bytes([10, 1, 0, 2]), bytes([203, 0, 113, 80]), p) for p in (50012, 50013)]
    syn, = go(LAN_TUN, tcp4(H1, SRV, 42000, 50013, "S", seq=1))
    assert (syn.src, syn.dst, syn[STCP].dport) == (R_WAN, SRV, 50013)
    # a port that was never announced: NEW, and the policy drops it
    assert go(LAN_TUN, tcp4(H1, SRV, 42001, 50014, "S", seq=1)) == []
