"""FTP (kernel: nf_conntrack_ftp.c, nf_nat_ftp.c).

PORT and EPRT from the client, 227 (PASV) and 229 (EPSV) from the server.
As the kernel reads them:

* only once the connection is ESTABLISHED, and only a segment that starts
  right after one of the last two segments of its direction that ended in
  "\\n" (a command counts at the start of a line, and never mid-segment);
* anchored at the segment's first byte, case-insensitive;
* a segment that is a prefix of a command, or a command whose numbers do not
  parse, is dropped ("partial matching"), so no later retransmission can
  sneak a different reading past;
* the announced address must be the sender's own (PORT from the client, 227
  from the server): otherwise nothing is expected ("NOT RECORDING").

The expected data connection comes from the sender's peer (any source port)
to the sender as the peer sees it, on the announced port; under NAT the
announced text is rewritten to that address and the port NAT found free.
"""
from tunrouter.helpers.base import (
    ORIGINAL,
    REPLY,
    TCP,
    Expect,
    Found,
    Helper,
    Packet,
    Policy,
    Rewrite,
)
from tunrouter.wire import ipv4

NUM_SEQ_TO_REMEMBER = 2


class FtpState:
    """Per connection: sequence numbers just after a "\\n", per direction (seq_aft_nl)."""
    __slots__ = ("seq_aft_nl",)

    def __init__(self):
        self.seq_aft_nl = ([], [])


def _after(a: int, b: int) -> bool:
    return 0 < ((a - b) & 0xFFFFFFFF) < 0x80000000


def _before(a: int, b: int) -> bool:
    return _after(b, a)


def try_number(data: bytes, count: int, sep: int, term: int | None) -> tuple[int, list[int]]:
    """try_number(): count decimal numbers separated by sep, then term (None: any
    non-digit); (length consumed, numbers) or (0, []).  u32 arithmetic, no range check."""
    nums = [0] * count
    i = 0
    for length, c in enumerate(data):
        if i >= count:
            break
        if 48 <= c <= 57:
            nums[i] = (nums[i] * 10 + c - 48) & 0xFFFFFFFF
        elif c == sep:
            i += 1
        else:
            if (term is None or c == term) and i == count - 1:
                return length, nums
            return 0, []
    return 0, []


def _rfc959(data: bytes, term: int | None):
    """h1,h2,h3,h4,p1,p2: (length, address, port) or None."""
    length, n = try_number(data, 6, 0x2C, term)
    if not length:
        return None
    addr = ((n[0] << 24) | (n[1] << 16) | (n[2] << 8) | n[3]) & 0xFFFFFFFF
    return length, addr.to_bytes(4, "big"), ((n[4] << 8) | n[5]) & 0xFFFF


def _get_port(data: bytes, start: int, delim: int):
    """Decimal digits up to delim, non-zero (u16 arithmetic): (end, port) or None."""
    port = 0
    for i in range(start, len(data)):
        c = data[i]
        if c == delim:
            return (i + 1, port) if port else None
        if not 48 <= c <= 57:
            return None
        port = (port * 10 + c - 48) & 0xFFFF
    return None


def _delim_ok(d: int) -> bool:
    return 33 <= d <= 126 and not 48 <= d <= 57


def try_port(data: bytes, sender: bytes):
    """PORT h1,h2,h3,h4,p1,p2 and "\r" right after."""
    return _rfc959(data, 0x0D)


def try_eprt(data: bytes, sender: bytes):
    """|1|a.b.c.d|port| with any printable non-digit delimiter."""
    if len(data) <= 3 or not _delim_ok(data[0]) or data[2] != data[0] or data[1] != 0x31:
        return None
    delim = data[0]
    length, n = try_number(data[3:], 4, 0x2E, delim)
    if not length:
        return None
    got = _get_port(data, 3 + length + 1, delim)
    if got is None:
        return None
    addr = ((n[0] << 24) | (n[1] << 16) | (n[2] << 8) | n[3]) & 0xFFFFFFFF
    return got[0], addr.to_bytes(4, "big"), got[1]


def try_rfc1123(data: bytes, sender: bytes):
    """227: skip to the first digit, then h1,...,p2 ended by anything."""
    for i, c in enumerate(data):
        if 48 <= c <= 57:
            r = _rfc959(data[i:], None)
            return None if r is None else (r[0], r[1], r[2], i)
    return None


def try_epsv(data: bytes, sender: bytes):
    """229 (|||port|): three identical delimiters; the address is the sender's."""
    if len(data) <= 3 or not _delim_ok(data[0]) or data[1] != data[0] or data[2] != data[0]:
        return None
    got = _get_port(data, 3, data[0])
    return None if got is None else (got[0], sender, got[1])


def _text_rfc959(addr: bytes, port: int) -> bytes:
    return b"%d,%d,%d,%d,%d,%d" % (*addr, port >> 8, port & 0xFF)


def _text_eprt(addr: bytes, port: int) -> bytes:
    return b"|1|%s|%d|" % (ipv4.ntoa(addr).encode(), port)


def _text_epsv(addr: bytes, port: int) -> bytes:
    return b"|||%d|" % port


# search[dir]: (pattern, skip to after this byte or None, parser, NAT text)
SEARCH = {
    ORIGINAL: ((b"PORT", 0x20, try_port, _text_rfc959),
               (b"EPRT", 0x20, try_eprt, _text_eprt)),
    REPLY: ((b"227 ", None, try_rfc1123, _text_rfc959),
            (b"229 ", 0x28, try_epsv, _text_epsv)),
}


def find_pattern(data: bytes, pattern: bytes, skip: int | None, parse, sender: bytes):
    """find_pattern(): 0 no match, -1 partial (drop), else (offset, length, address, port)."""
    plen = len(pattern)
    if len(data) <= plen:
        return -1 if data.lower() == pattern[:len(data)].lower() else 0
    if data[:plen].lower() != pattern.lower():
        return 0
    i = plen
    if skip is not None:
        while data[i] != skip:
            if i == len(data) - 1:
                return -1
            i += 1
        i += 1
    r = parse(data[i:], sender)
    if r is None:
        return -1
    if len(r) == 4:                              # 227: the numbers start further on
        length, addr, port, lead = r
        return i + lead, length, addr, port
    length, addr, port = r
    return i, length, addr, port


class Ftp(Helper):
    name = "ftp"
    proto = TCP
    ports = (21,)
    policy = Policy(max_expected=1, timeout=300.0)
    loose = False        # the module parameter: expect to an announced third address too

    def new_state(self) -> FtpState:
        return FtpState()

    def help(self, pkt: Packet) -> Found | None:
        data = pkt.payload
        if not data or not pkt.established:
            return None                          # nothing is read before the handshake's reply
        state, direction, seq = pkt.state, pkt.direction, pkt.seq
        found = self._parse(pkt, data, state, direction, seq)
        if data[-1] == 0x0A and (found is None or found.drop is None):
            self._update_nl_seq(state.seq_aft_nl[direction], (seq + len(data)) & 0xFFFFFFFF)
        return found

    def _parse(self, pkt: Packet, data: bytes, state: FtpState, direction: int, seq: int):
        if seq not in state.seq_aft_nl[direction]:
            return None                          # not at the start of a line
        sender = pkt.tuple[0]
        for pattern, skip, parse, text in SEARCH[direction]:
            r = find_pattern(data, pattern, skip, parse, sender)
            if r == 0:
                continue
            if r == -1:
                return Found(drop=f"partial matching of `{pattern.decode()}'")
            off, length, addr, port = r
            if addr != sender:
                line = (f"NOT RECORDING: {ipv4.ntoa(addr)} != {ipv4.ntoa(sender)}")
                if not self.loose:
                    return Found(log=line)
                dst = addr
            else:
                dst = pkt.other[1]
            return Found([Expect(TCP, pkt.other[0], None, dst, port,
                                 Rewrite(off, off + length, text))])
        return None

    @staticmethod
    def _update_nl_seq(seqs: list[int], nl_seq: int) -> None:
        if nl_seq in seqs:
            return
        if len(seqs) < NUM_SEQ_TO_REMEMBER:
            seqs.append(nl_seq)
            return
        oldest = 0 if _before(seqs[0], seqs[1]) else 1
        if _after(nl_seq, seqs[oldest]):
            seqs[oldest] = nl_seq
