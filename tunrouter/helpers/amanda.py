"""Amanda (kernel: nf_conntrack_amanda.c, nf_nat_amanda.c).

The Amanda backup server asks a client (UDP 10080); the client's answer
names the TCP ports the server is to connect to:

    ...CONNECT DATA 50012 MESG 50013 INDEX 50014\\n

As the kernel reads it:

* only REPLY packets (client -> server; the kernel returns early for
  ORIGINAL whatever its comment says);
* "CONNECT " anywhere in the payload, then the first "\\n" after it; within
  that line the first occurrence of each of "DATA ", "MESG ", "INDEX ",
  "STATE " (in that order, each searched from the start of the line, also
  inside a longer word), each followed by a port: at most 5 characters are
  read, as decimal digits (so "500123" reads 50012), and the number is
  truncated to 16 bits (99999 is 34463); a port of 0 (no digits, a space
  first, 65536...) stops the processing of the remaining keywords;
* each port expects a TCP connection from the ORIGINAL tuple's source to its
  destination on that port (any source port).  Under NAT the port digits
  become the port NAT found free ("%u"); the address is not in the payload.

Not done: the kernel also refreshes the master UDP connection's timeout to
master_timeout (300 s) on every reply packet (replies from Amanda clients can
be much delayed); a helper here sees no connection to refresh, so the master
keeps the ordinary UDP timeouts.
"""
from tunrouter.helpers.base import (
    REPLY,
    TCP,
    UDP,
    Expect,
    Found,
    Helper,
    Packet,
    Policy,
    Rewrite,
)

KEYWORDS = (b"DATA ", b"MESG ", b"INDEX ", b"STATE ")
PORT_CHARS = len(b"65535")


def _text(addr: bytes, port: int) -> bytes:
    return b"%u" % port


class Amanda(Helper):
    name = "amanda"
    proto = UDP
    ports = (10080,)
    policy = Policy(max_expected=4, timeout=180.0)

    def help(self, pkt: Packet) -> Found | None:
        if pkt.direction != REPLY:
            return None
        data = pkt.payload
        start = data.find(b"CONNECT ")
        if start < 0:
            return None
        start += len(b"CONNECT ")
        stop = data.find(b"\n", start)
        if stop < 0:
            return None
        orig = pkt.other
        expects = []
        for kw in KEYWORDS:
            off = data.find(kw, start, stop)       # the whole keyword before the '\n'
            if off < 0:
                continue
            off += len(kw)
            pbuf = data[off:off + min(PORT_CHARS, stop - off)]
            port = length = 0
            while length < len(pbuf) and 48 <= pbuf[length] <= 57:
                port = port * 10 + pbuf[length] - 48
                length += 1
            port &= 0xFFFF                         # htons() of an unsigned long
            if port == 0:
                break
            expects.append(Expect(TCP, orig[0], None, orig[1], port,
                                  Rewrite(off, off + length, _text)))
        return Found(expects) if expects else None
