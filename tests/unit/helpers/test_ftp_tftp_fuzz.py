"""FTP and TFTP parsers on random and adversarial payloads: no exception, and no
expectation made from garbage -- whatever is expected was announced by a command
the kernel's parser (nf_conntrack_ftp.c, nf_conntrack_tftp.c) would read, for the
sender's own address, and under NAT the rewrite spans exactly the announced text.

Numbers wrap as the kernel's do (u32 octets, u16 ports: "PORT 10,1,0,2,300,80"
announces port 300 * 256 + 80 mod 65536), so the reference reading below wraps too.
"""
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunrouter.helpers.base import ORIGINAL, REPLY, TCP, UDP, Packet
from tunrouter.helpers.ftp import Ftp, FtpState
from tunrouter.helpers.tftp import Tftp

CLIENT, SERVER, WAN = bytes([10, 1, 0, 2]), bytes([203, 0, 113, 80]), bytes([203, 0, 113, 1])
ORIG = (CLIENT, SERVER, TCP, 40000, 21)
REPLY_T = (SERVER, WAN, TCP, 21, 40000)
SEQ = 1000
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ftp(payload: bytes, direction=ORIGINAL, seq=SEQ):
    state = FtpState()
    state.seq_aft_nl[direction].append(SEQ)          # the segment starts a line
    tup, other = (ORIG, REPLY_T) if direction == ORIGINAL else (REPLY_T, ORIG)
    return Ftp().help(Packet(payload, direction, seq, tup, other, True, state, True)), state


def _addr(n):
    return (((n[0] << 24) | (n[1] << 16) | (n[2] << 8) | n[3]) & 0xFFFFFFFF).to_bytes(4, "big")


def reference(data: bytes, direction: int):
    """(address, port, start, end) the kernel would read from data, or None."""
    nums = rb"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)"
    if direction == ORIGINAL:
        m = re.match(rb"(?i)PORT[^ ]* " + nums + rb"\r", data, re.S)
        if m:
            n = [int(x) & 0xFFFFFFFF for x in m.groups()]
            return _addr(n), ((n[4] << 8) | n[5]) & 0xFFFF, m.start(1), m.end(6)
        m = re.match(rb"(?i)EPRT[^ ]* ([!-/:-~])1\1(\d+)\.(\d+)\.(\d+)\.(\d+)\1(\d+)\1", data, re.S)
        if m:
            n = [int(x) & 0xFFFFFFFF for x in m.groups()[1:5]]
            port = int(m.group(6)) & 0xFFFF
            return (_addr(n), port, m.start(1), m.end(6) + 1) if port else None
        return None
    m = re.match(rb"(?i)227 [^0-9]*" + nums, data, re.S)
    if m:
        n = [int(x) & 0xFFFFFFFF for x in m.groups()]
        return _addr(n), ((n[4] << 8) | n[5]) & 0xFFFF, m.start(1), m.end(6)
    m = re.match(rb"(?i)229 [^(]*\(([!-/:-~])\1\1(\d+)\1", data, re.S)
    if m:
        port = int(m.group(2)) & 0xFFFF
        return (SERVER, port, m.start(1), m.end(2) + 1) if port else None
    return None


def check_ftp(data: bytes, direction: int = ORIGINAL):
    found, _state = ftp(data, direction)
    if found is None or not found.expects:
        return found
    ref = reference(data, direction)
    assert ref is not None, f"an expectation from garbage: {data!r}"
    addr, port, start, end = ref
    exp, = found.expects
    sender = (CLIENT, SERVER)[direction]
    assert addr == sender
    assert (exp.proto, exp.src, exp.sport, exp.dport) == (TCP, (SERVER, CLIENT)[direction], None, port)
    assert exp.dst == (WAN, SERVER)[direction]
    assert 0 <= port <= 65535
    assert (exp.rewrite.start, exp.rewrite.end) == (start, end)
    return found


_num = st.one_of(st.integers(0, 2**40).map(lambda n: b"%d" % n), st.sampled_from(
    [b"", b"-1", b"0", b"256", b"300", b"4294967296", b"4294967306", b"65536", b"99999999999",
     b"0x10", b" 5", b"+1", b"1e3"]))
_word = st.sampled_from([b"PORT ", b"PORT", b"port ", b"EPRT ", b"EPRT |1|", b"227 ", b"229 ",
                         b"227 Entering (", b"229 (|||", b"(", b")", b",", b".", b"|", b"!", b" ",
                         b"\r", b"\n", b"\r\n", b"x" * 5000, b"," * 300, b"\0", b"\xff"])


@FUZZ
@given(st.binary(max_size=600), st.sampled_from([ORIGINAL, REPLY]))
def test_ftp_random_bytes(data, direction):
    check_ftp(data, direction)


@FUZZ
@given(st.sampled_from([b"PORT ", b"EPRT ", b"227 ", b"229 ("]), st.binary(max_size=200))
def test_ftp_random_bytes_after_a_command(head, tail):
    data = head + tail
    check_ftp(data, ORIGINAL if head[0] in b"PE" else REPLY)


@FUZZ
@given(st.lists(st.one_of(_word, _num, st.binary(max_size=6)), max_size=20),
       st.sampled_from([ORIGINAL, REPLY]))
def test_ftp_adversarial(parts, direction):
    check_ftp(b"".join(parts), direction)


@FUZZ
@given(st.lists(_num, min_size=6, max_size=6), st.sampled_from([b"\r\n", b"\n", b"\r", b"", b" \r\n"]))
def test_ftp_port_numbers_out_of_range(nums, end):
    """PORT fields of 300, negative, overflowing, missing: read as the kernel reads them or not at all."""
    data = b"PORT " + b",".join(nums) + end
    found = check_ftp(data)
    if found is not None and found.expects:
        assert end.startswith(b"\r")


def test_port_field_of_300_wraps_like_the_kernel():
    found = check_ftp(b"PORT 10,1,0,2,300,80\r\n")
    assert found.expects[0].dport == (300 * 256 + 80) & 0xFFFF


def test_negative_port_field_is_a_partial_match_and_drops():
    found, _ = ftp(b"PORT 10,1,0,2,-1,80\r\n")
    assert found.drop and not found.expects


def test_missing_crlf_after_port_is_a_partial_match_and_drops():
    found, state = ftp(b"PORT 10,1,0,2,195,80")
    assert found.drop and not found.expects
    assert state.seq_aft_nl[ORIGINAL] == [SEQ]


def test_huge_lines_expect_nothing():
    found, state = ftp(b"PORT " + b"1" * 100_000)
    assert found.drop and not found.expects
    found, state = ftp(b"NOOP " + b"x" * 100_000 + b"\r\n")
    assert found is None and state.seq_aft_nl[ORIGINAL] == [SEQ, SEQ + 100_007]


def test_forged_address_in_overflowing_octets_is_the_kernel_reading():
    """10,0,256,2 is 10.1.0.2 in u32 arithmetic: the kernel expects it, so do we."""
    found = check_ftp(b"PORT 10,0,256,2,195,80\r\n")
    assert found.expects[0].dport == 50000


def test_eprt_port_zero_and_overflow():
    found, _ = ftp(b"EPRT |1|10.1.0.2|0|\r\n")
    assert found.drop and not found.expects
    found = check_ftp(b"EPRT |1|10.1.0.2|65536|\r\n")          # wraps to 0: refused
    assert found.drop and not found.expects
    assert check_ftp(b"EPRT |1|10.1.0.2|65537|\r\n").expects[0].dport == 1


@FUZZ
@given(st.binary(max_size=200), st.integers(0, 2**32 - 1))
def test_ftp_not_at_a_line_start_reads_nothing(data, seq):
    found, _ = ftp(data, seq=seq if seq != SEQ else SEQ + 1)
    assert found is None


# -- TFTP -------------------------------------------------------------------------

T_ORIG = (CLIENT, SERVER, UDP, 42000, 69)
T_REPLY = (SERVER, WAN, UDP, 69, 42000)


def tftp(data: bytes, direction=ORIGINAL):
    tup, other = (T_ORIG, T_REPLY) if direction == ORIGINAL else (T_REPLY, T_ORIG)
    return Tftp().help(Packet(data, direction, None, tup, other, True, None, False))


@FUZZ
@given(st.binary(max_size=600), st.sampled_from([ORIGINAL, REPLY]))
def test_tftp_random_bytes(data, direction):
    found = tftp(data, direction)
    if found is None:
        assert len(data) < 2 or int.from_bytes(data[:2], "big") not in (1, 2)
        return
    assert int.from_bytes(data[:2], "big") in (1, 2)
    exp, = found.expects
    # from the server (any port) to the client as the server sees it: never from the payload
    assert (exp.proto, exp.src, exp.sport, exp.dst, exp.dport, exp.rewrite) == (
        UDP, SERVER, None, WAN, 42000, None)


@given(st.sampled_from([b"", b"\0", b"\1", b"\0\0", b"\0\3", b"\0\5", b"\xff\xff", b"\1\0", b"\2\0"]))
def test_tftp_short_and_other_opcodes_expect_nothing(data):
    assert tftp(data) is None


def test_tftp_request_without_filename_still_expects_the_answer():
    """The kernel reads only the opcode: a bare RRQ/WRQ expects the server's answer."""
    for op in (b"\0\1", b"\0\2", b"\0\1" + b"x" * 70000):
        assert tftp(op).expects[0].dport == 42000
