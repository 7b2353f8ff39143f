"""IRC DCC (kernel: nf_conntrack_irc.c, nf_nat_irc.c).

A client tells its peer, through the IRC server, where to connect for a
file (DCC SEND) or a chat (DCC CHAT):

    PRIVMSG bob :\\1DCC SEND file.txt 3232235778 5000 1234\\1\\r\\n

As the kernel reads it (after the 2022 hardening commits "Tighten matching
on DCC message" and "Fix forged IP logic"):

* only client -> server (ORIGINAL) packets, only once ESTABLISHED, at most
  the first 4095 bytes of the payload;
* leading ' ', '\\r', '\\n' skipped; then, when more than 10 bytes remain,
  the payload must start with "PRIVMSG " (any case);
* the first " :" (the message text) must be followed by "\\1DCC "; the
  type (SEND, CHAT, MOVE, TSEND, SCHAT; exact case), an argument up to its
  space, then a '\\n' must come somewhere further on, the address as one
  decimal 32-bit number and the port as a decimal number (no range check:
  the numbers wrap as the kernel's simple_strtoul() and truncations do);
* the address must be the client's own, original or NATed, and the port
  non-zero: otherwise "Forged DCC command" is logged and nothing expected.
  As in the kernel, the search then goes on (with the remaining DCC types,
  then the next " :", which must again be followed by "\\1DCC ");
* the first valid DCC is expected (from any address and port, to the
  client as the outside sees it), and nothing after it is read.

Under NAT the address and port text becomes "%u %u": the client's outside
address as a decimal number and the port NAT found free.
"""
from tunrouter.helpers.base import ORIGINAL, TCP, Found, Helper, Packet, Policy, Rewrite
from tunrouter.wire import ipv4

MAX_SEARCH_SIZE = 4095
MINMATCHLEN = 5
DCC_PROTOS = (b"SEND ", b"CHAT ", b"MOVE ", b"TSEND ", b"SCHAT ")
_WS = (0x20, 0x0D, 0x0A)


def _strtoul(data: bytes, i: int) -> tuple[int, int]:
    """simple_strtoul(s, &end, 10): the decimal digits at i, (value mod 2**64, end)."""
    v = 0
    n = len(data)
    while i < n and 48 <= data[i] <= 57:
        v = (v * 10 + data[i] - 48) & 0xFFFFFFFFFFFFFFFF
        i += 1
    return v, i


def parse_dcc(data: bytes, i: int):
    """parse_dcc(): from i (after the DCC type), (address, port, begin, end) or None."""
    n = len(data)
    if i >= n:                      # a type ending the data: the kernel reads past it and fails
        return None
    # skip the argument up to its space; at least 12 bytes ("AAAAAAAA P\1\n") must be left
    while True:
        c = data[i]
        i += 1
        if c == 0x20:
            break
        if i > n - 12:
            return None
    # a '\n' must follow within the data (simple_strtoul stops at the first non-digit)
    if data.find(b"\n", i) < 0:
        return None
    beg = i
    ip, i = _strtoul(data, i)
    while data[i] == 0x20:          # cannot run off: a '\n' is further on
        i += 1
    port, i = _strtoul(data, i)
    return (ip & 0xFFFFFFFF).to_bytes(4, "big"), port & 0xFFFF, beg, i


def _text(addr: bytes, port: int) -> bytes:
    return b"%u %u" % (int.from_bytes(addr, "big"), port)


class Irc(Helper):
    name = "irc"
    proto = TCP
    ports = (6667,)
    policy = Policy(max_expected=8, timeout=300.0)

    def help(self, pkt: Packet) -> Found | None:
        if pkt.direction != ORIGINAL or not pkt.established or not pkt.payload:
            return None
        data = pkt.payload[:MAX_SEARCH_SIZE]
        n = len(data)
        i = 0
        while i < n - 10 and data[i] in _WS:
            i += 1
        if i < n - 10:                              # strlen("PRIVMSG x ") = 10
            if data[i:i + 8].lower() != b"privmsg ":
                return None
            i += 8
        log = None
        limit = n - (21 + MINMATCHLEN)
        while i < limit:
            if data[i:i + 2] != b" :":
                i += 1
                continue
            i += 2
            if data[i:i + 5] != b"\1DCC ":          # only right after the first " :"
                break
            i += 5
            for proto in DCC_PROTOS:
                if data[i:i + len(proto)] != proto:
                    continue
                i += len(proto)                     # kept on failure, as in the kernel
                got = parse_dcc(data, i)
                if got is None:
                    continue
                addr, port, beg, end = got
                if (addr != pkt.tuple[0] and addr != pkt.other[1]) or port == 0:
                    if log is None:
                        log = (f"Forged DCC command from {ipv4.ntoa(pkt.tuple[0])}: "
                               f"{ipv4.ntoa(addr)}:{port}")
                    continue
                return Found([pkt.expect_to_sender(port, TCP, any_source=True,
                                                   rewrite=Rewrite(beg, end, _text))], log=log)
        return Found(log=log) if log else None
