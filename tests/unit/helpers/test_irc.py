"""The IRC DCC parser as the kernel reads it (nf_conntrack_irc.c), one packet at a time."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunrouter.helpers.base import ORIGINAL, REPLY, TCP, Packet
from tunrouter.helpers.irc import Irc

CLIENT, SERVER, WAN = bytes([10, 1, 0, 2]), bytes([203, 0, 113, 80]), bytes([203, 0, 113, 1])
ORIG = (CLIENT, SERVER, TCP, 40000, 6667)
REPLY_NAT = (SERVER, WAN, TCP, 6667, 40000)
REPLY_PLAIN = (SERVER, CLIENT, TCP, 6667, 40000)
C = int.from_bytes(CLIENT, "big")           # 167837698
W = int.from_bytes(WAN, "big")


def pkt(payload: bytes, direction=ORIGINAL, nat=True, established=True) -> Packet:
    reply = REPLY_NAT if nat else REPLY_PLAIN
    tup, other = (ORIG, reply) if direction == ORIGINAL else (reply, ORIG)
    return Packet(payload, direction, 1000, tup, other, nat, None, established)


def help_(payload: bytes, **kw):
    return Irc().help(pkt(payload, **kw))


def test_dcc_send_expects_any_source_to_the_client_outside_address():
    data = b"PRIVMSG bob :\1DCC SEND file.txt %d 5000 1234\1\r\n" % C
    found = help_(data)
    exp, = found.expects
    assert (exp.proto, exp.src, exp.sport, exp.dst, exp.dport) == (TCP, None, None, WAN, 5000)
    rw = exp.rewrite
    assert data[rw.start:rw.end] == b"%d 5000" % C
    assert rw.text(WAN, 5001) == b"%d 5001" % W
    assert found.log is None and found.drop is None


def test_dcc_chat_and_the_other_types():
    for kind, arg in ((b"CHAT", b"chat"), (b"MOVE", b"f"), (b"TSEND", b"f"), (b"SCHAT", b"chat")):
        data = b"PRIVMSG bob :\1DCC %s %s %d 6000\1\r\n" % (kind, arg, C)
        exp, = help_(data).expects
        assert exp.dport == 6000
        assert data[exp.rewrite.start:exp.rewrite.end] == b"%d 6000" % C


def test_without_nat_the_client_address_is_its_own():
    exp, = help_(b"PRIVMSG bob :\1DCC CHAT chat %d 6000\1\r\n" % C, nat=False).expects
    assert exp.dst == CLIENT and exp.src is None


def test_the_natted_address_is_accepted_too():
    exp, = help_(b"PRIVMSG bob :\1DCC SEND f %d 7000 1\1\r\n" % W).expects
    assert exp.dst == WAN and exp.dport == 7000


def test_leading_blanks_and_command_case():
    exp, = help_(b"\r\n  privmsg bob :\1DCC SEND f %d 7000 1\1\r\n" % C).expects
    assert exp.dport == 7000


def test_forged_address_is_logged_and_expects_nothing():
    found = help_(b"PRIVMSG bob :\1DCC SEND f %d 7000 1\1\r\n" % 3232235778)
    assert found.expects == [] and found.drop is None
    assert found.log == "Forged DCC command from 10.1.0.2: 192.168.1.2:7000"


def test_port_zero_counts_as_forged():
    found = help_(b"PRIVMSG bob :\1DCC SEND f %d 0 1\1\r\n" % C)
    assert found.expects == [] and "Forged DCC command" in found.log
    found = help_(b"PRIVMSG bob :\1DCC SEND f %d 65536 1\1\r\n" % C)     # wraps to 0
    assert found.expects == []


def test_numbers_wrap_like_the_kernel():
    exp, = help_(b"PRIVMSG bob :\1DCC SEND f %d 70000 1\1\r\n" % (C + 2**32)).expects
    assert exp.dport == 70000 - 65536


@pytest.mark.parametrize("data", [
    b"PRIVMSG bob :hi \1DCC SEND f %d 5000 1\1\r\n" % C,            # not right after " :"
    b"PRIVMSG bob :see :\1DCC SEND f %d 5000 1\1\r\n" % C,          # a later ":" does not count
    b"NOTICE bob :\1DCC SEND f %d 5000 1\1\r\n" % C,                # not PRIVMSG
    b"PRIVMSG bob :\1DCC send f %d 5000 1\1\r\n" % C,               # type is case-sensitive
    b"PRIVMSG bob :\1dcc SEND f %d 5000 1\1\r\n" % C,               # so is DCC
    b"PRIVMSG bob :\1DCC GET f %d 5000 1\1\r\n" % C,                # unknown type
    b"PRIVMSG bob :\1DCC SEND f %d 5000 1\1\r" % C,                 # no '\n'
    b"PRIVMSG bob :\1DCC SEND f %d 5000 1\1" % C,                   # no line end at all
    b"PRIVMSG bob :\1DCC SEND %d 5000\n" % C,                        # argument eats the address
])
def test_not_a_dcc(data):
    found = help_(data)
    assert found is None or found.expects == []


def test_a_dcc_after_a_later_colon_is_not_read():
    # the first " :" is the one that counts: here "bob :x", not the one before \1DCC
    assert help_(b"PRIVMSG bob :x :\1DCC SEND f %d 5000 1\1\r\n" % C) is None


def test_reply_direction_is_ignored():
    data = b"PRIVMSG bob :\1DCC SEND f %d 5000 1\1\r\n" % C
    assert help_(data, direction=REPLY) is None
    assert Irc().help(Packet(data, REPLY, 1, REPLY_NAT, ORIG, True, None, True)) is None


def test_not_before_established():
    assert help_(b"PRIVMSG bob :\1DCC SEND f %d 5000 1\1\r\n" % C, established=False) is None


def test_only_the_first_4095_bytes_are_read():
    line = b"PRIVMSG bob :\1DCC SEND f %d 5000 1\1\r\n" % C
    pad = b"PRIVMSG bob :" + b"x" * 4095
    assert help_(pad + line) is None
    data = b"PRIVMSG bob :\1DCC SEND " + b"f" * (4095 - 23 - 10) + b" %d 5000\n" % C
    assert len(data) > 4095
    found = help_(data)
    assert found is None or found.expects == []          # the '\n' is past the 4095 bytes


def test_only_the_first_valid_dcc_counts():
    data = (b"PRIVMSG bob :\1DCC SEND f %d 5000 1\1\r\n"
            b"PRIVMSG bob :\1DCC SEND f %d 5001 1\1\r\n") % (C, C)
    exp, = help_(data).expects
    assert exp.dport == 5000


def test_after_a_forged_dcc_the_kernel_goes_on_to_the_next_colon():
    data = (b"PRIVMSG bob :\1DCC SEND f 1 5000 1\1\r\n"
            b"PRIVMSG bob :\1DCC SEND f %d 5001 1\1\r\n") % C
    found = help_(data)
    exp, = found.expects
    assert exp.dport == 5001 and "Forged" in found.log


def test_short_payloads():
    for data in (b"", b"\n", b"PRIVMSG", b"PRIVMSG bob :\1DCC SEND", b" :\1DCC SEND "):
        assert help_(data) is None


# -- fuzz ----------------------------------------------------------------------

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(found, data: bytes):
    """Whatever the payload: no exception, and an expectation only for a real DCC of the client."""
    if found is None:
        return
    assert found.drop is None
    for exp in found.expects:
        assert exp.proto == TCP and exp.src is None and exp.dst == WAN
        assert 1 <= exp.dport <= 65535
        rw = exp.rewrite
        assert 0 <= rw.start < rw.end <= min(len(data), 4095)
        addr, _, port = data[rw.start:rw.end].partition(b" ")
        assert int(addr) % 2**32 in (C, W) and int(port.lstrip(b" ")) % 65536 == exp.dport


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(data):
    found = help_(data)
    check(found, data)
    assert found is None or not found.expects


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_after_a_dcc_prefix(data):
    payload = b"PRIVMSG bob :\1DCC SEND " + data
    check(help_(payload), payload)


_num = st.one_of(st.integers(0, 2**70).map(lambda n: b"%d" % n), st.sampled_from(
    [b"", b"-1", b"0", b"00000000000000000000000", b"4294967296", b"%d" % (C + 2**32),
     b"%d" % (C + 2**64), b"65536", b"65537", b"1e3", b"0x10", b" ", b"\n"]))
_word = st.sampled_from([b"PRIVMSG ", b"privmsg ", b"NOTICE ", b"", b" :", b":", b"\1DCC ", b"\1dcc ",
                         b"SEND ", b"CHAT ", b"TSEND ", b"SCHAT ", b"MOVE ", b"GET ", b"chat ", b" ",
                         b"\r", b"\n", b"\r\n", b"\1", b"x" * 5000, b" " * 300, b"bob "])


@FUZZ
@given(st.lists(st.one_of(_word, _num, st.binary(max_size=8)), max_size=16))
def test_fuzz_adversarial(parts):
    data = b"".join(parts)
    check(help_(data), data)


@FUZZ
@given(_num, _num, st.sampled_from([b"\r\n", b"\n", b"\r", b"", b"\1"]),
       st.sampled_from([b"SEND f ", b"CHAT chat ", b"SEND  ", b"SEND ", b"TSEND x ", b"SCHAT "]))
def test_fuzz_numbers(addr, port, end, head):
    data = b"PRIVMSG bob :\1DCC " + head + addr + b" " + port + b" 1\1" + end
    found = help_(data)
    check(found, data)
    if found and found.expects:
        assert b"\n" in data[found.expects[0].rewrite.end:]


# -- through the router ----------------------------------------------------------

def test_dcc_send_through_masquerade_is_rewritten_and_the_peer_connection_is_related():
    from packets import H1, LAN_TUN, R_WAN, SRV, make_router, parse_out, tcp4
    from packets import WAN as WAN_PORT
    from scapy.all import TCP as STCP
    from scapy.all import Raw

    from tunrouter.conntrack.format import expect_line
    from tunrouter.core.hooks import engine_for

    rules = ("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
             "-A PREROUTING -p tcp -m tcp --dport 6667 -j CT --helper irc\nCOMMIT\n"
             "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
             ":POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o wan0 -j MASQUERADE\nCOMMIT\n"
             "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
             "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n"
             "-A FORWARD -i lan0 -p tcp --dport 6667 -j ACCEPT\nCOMMIT\n")
    r = make_router()
    r.set_rules(engine_for(rules))
    t = [0.0]

    def go(port, frame):
        t[0] += 0.01
        return [parse_out(f) for _, f in r.process(port, frame, t[0])]

    assert go(LAN_TUN, tcp4(H1, SRV, 40000, 6667, "S", seq=1000))
    assert go(WAN_PORT, tcp4(SRV, R_WAN, 6667, 40000, "SA", seq=5000, ack=1001))
    assert go(LAN_TUN, tcp4(H1, SRV, 40000, 6667, "A", seq=1001, ack=5001))
    line = b"PRIVMSG bob :\1DCC SEND f.txt %d 5000 1234\1\r\n" % C
    out, = go(LAN_TUN, tcp4(H1, SRV, 40000, 6667, "PA", line, seq=1001, ack=5001))
    wan = int.from_bytes(bytes(int(x) for x in R_WAN.split(".")), "big")
    assert bytes(out[Raw].load) == b"PRIVMSG bob :\1DCC SEND f.txt %d 5000 1234\1\r\n" % wan
    chk = out[STCP].chksum
    del out[STCP].chksum
    assert parse_out(bytes(out))[STCP].chksum == chk
    ex, = [expect_line(e, t[0]) for e in r.conntrack.expects.all(t[0])]
    assert ex == ("300 proto=6 src=0.0.0.0 dst=203.0.113.1 sport=0 dport=5000 mask-src=0.0.0.0 "
                  "mask-dst=255.255.255.255 sport=0 dport=65535 master-src=10.1.0.2 "
                  "master-dst=203.0.113.80 sport=40000 dport=6667 class=0 helper=irc")
    # the next client segment is moved by the length difference
    grown = len(b"%d" % wan) - len(b"%d" % C)
    nxt, = go(LAN_TUN, tcp4(H1, SRV, 40000, 6667, "PA", b"PING x\r\n", seq=1001 + len(line), ack=5001))
    assert nxt[STCP].seq == 1001 + len(line) + grown
    # anyone may connect: a host that is not the IRC server, to the router's port 5000
    syn, = go(WAN_PORT, tcp4("203.0.113.99", R_WAN, 33333, 5000, "S", seq=9000))
    # nf_nat_follow_master(): the source becomes the master's original destination (the
    # IRC server), as in Linux; the destination the client's announced port
    assert (syn.src, syn.dst, syn[STCP].sport, syn[STCP].dport) == (SRV, H1, 33333, 5000)
    assert r.conntrack.expects.count == 0
