"""The LOG target's line, as the kernel writes it, and the same fields as JSON.

Mirrors net/netfilter/nf_log_syslog.c of the reference kernel (6.18):
nf_log_dump_packet_common(), dump_ipv4_mac_header(), dump_ipv4_packet(),
nf_log_dump_tcp_header() and nf_log_dump_udp_header().  Every token ends
with a space, so a line does too.  An ICMP error quotes the packet it
answers once, in brackets.  Where the kernel finds a header cut short it
prints INCOMPLETE [n bytes] (n counts to the end of the whole packet, as
skb->len - offset does) and stops that header.

The record is built while the packet is lent (fields are copied out); the
text and JSON are produced when the driver's sink asks.  Which sink (a file,
stderr, syslog) is the driver's business.
"""
import json

from tunrouter.wire import icmp, ipv4

IP_CE = 0x8000
TCP_FLAG_NAMES = (("AE", 12, 0x01), ("CWR", 13, 0x80), ("ECE", 13, 0x40), ("URG", 13, 0x20),
                  ("ACK", 13, 0x10), ("PSH", 13, 0x08), ("RST", 13, 0x04), ("SYN", 13, 0x02),
                  ("FIN", 13, 0x01))
# kernel required_len[]: bytes an ICMP message of each type needs to be printed.
ICMP_REQUIRED = {icmp.ECHO_REPLY: 4, icmp.DEST_UNREACH: 28, icmp.SOURCE_QUENCH: 28,
                 icmp.REDIRECT: 28, icmp.ECHO_REQUEST: 4, icmp.TIME_EXCEEDED: 28,
                 icmp.PARAMETER_PROB: 28, icmp.TIMESTAMP: 20, icmp.TIMESTAMP_REPLY: 20,
                 icmp.ADDRESS: 12, icmp.ADDRESS_REPLY: 12}


class _Line:
    """Text and JSON of one dump, built token by token."""
    __slots__ = ("text", "fields")

    def __init__(self):
        self.text: list[str] = []
        self.fields: dict = {}

    def kv(self, key: str, value, json_key: str | None = None) -> None:
        self.text.append(f"{key}={value} ")
        self.fields[json_key or key.lower()] = value

    def flag(self, group: str, name: str) -> None:
        self.text.append(f"{name} ")
        self.fields.setdefault(group, []).append(name)

    def hexopt(self, json_key: str, data) -> None:
        value = bytes(data).hex().upper()
        self.text.append(f"OPT ({value}) ")
        self.fields[json_key] = value

    def incomplete(self, n: int) -> None:
        self.text.append(f"INCOMPLETE [{n} bytes] ")
        self.fields["incomplete"] = n


def _u16(buf, off: int) -> int:
    return (buf[off] << 8) | buf[off + 1]


def _u32(buf, off: int) -> int:
    return int.from_bytes(buf[off:off + 4], "big")


def _dump_tcp(line: _Line, buf, off: int, fragment: bool, log) -> bool:
    """nf_log_dump_tcp_header(); False when the header is cut short."""
    line.kv("PROTO", "TCP")
    if fragment:
        return True
    if len(buf) < off + 20:
        line.incomplete(len(buf) - off)
        return False
    line.kv("SPT", _u16(buf, off))
    line.kv("DPT", _u16(buf, off + 2))
    if log.tcp_sequence:
        line.kv("SEQ", _u32(buf, off + 4))
        line.kv("ACK", _u32(buf, off + 8), "ack_seq")
    line.kv("WINDOW", _u16(buf, off + 14))
    # TCP_RESERVED_BITS without AE (0x0E000000), printed >> 22.
    line.kv("RES", "0x%02x" % ((buf[off + 12] & 0x0E) << 2))
    for name, index, bit in TCP_FLAG_NAMES:
        if buf[off + index] & bit:
            line.flag("tcp_flags", name)
    line.kv("URGP", _u16(buf, off + 18))
    doff = (buf[off + 12] >> 4) * 4
    if log.tcp_options and doff > 20:
        if len(buf) < off + doff:
            line.text.append("OPT (TRUNCATED) ")
            return False
        line.hexopt("tcp_options", buf[off + 20:off + doff])
    return True


def _dump_udp(line: _Line, buf, off: int, fragment: bool) -> bool:
    line.kv("PROTO", "UDP")
    if fragment:
        return True
    if len(buf) < off + 8:
        line.incomplete(len(buf) - off)
        return False
    line.kv("SPT", _u16(buf, off))
    line.kv("DPT", _u16(buf, off + 2))
    line.kv("LEN", _u16(buf, off + 4), "udp_len")
    return True


def _dump_icmp(line: _Line, buf, off: int, fragment: bool, log, quoted: bool) -> None:
    line.kv("PROTO", "ICMP")
    if fragment:
        return
    left = len(buf) - off
    if left < 8:
        line.incomplete(left)
        return
    t, code = buf[off], buf[off + 1]
    line.kv("TYPE", t)
    line.kv("CODE", code)
    if left < ICMP_REQUIRED.get(t, 0):
        line.incomplete(left)
        return
    if t in (icmp.ECHO_REPLY, icmp.ECHO_REQUEST):
        line.kv("ID", _u16(buf, off + 4), "icmp_id")
        line.kv("SEQ", _u16(buf, off + 6), "icmp_seq")
    elif t == icmp.PARAMETER_PROB:
        line.kv("PARAMETER", buf[off + 4])
    if t in (icmp.REDIRECT, icmp.DEST_UNREACH, icmp.SOURCE_QUENCH, icmp.TIME_EXCEEDED):
        if t == icmp.REDIRECT:
            line.kv("GATEWAY", ipv4.ntoa(bytes(buf[off + 4:off + 8])))
        if not quoted:
            inner = _Line()
            _dump_ipv4(inner, buf, off + 8, log, quoted=True)
            line.text.append("[" + "".join(inner.text) + "] ")
            line.fields["quoted"] = inner.fields
        if t == icmp.DEST_UNREACH and code == icmp.FRAG_NEEDED:
            line.kv("MTU", _u16(buf, off + 6))


def _dump_ipv4(line: _Line, buf, off: int, log, quoted: bool = False) -> None:
    """dump_ipv4_packet() for the header at off (0, or the quoted one in an ICMP error)."""
    if len(buf) < off + 20:
        line.text.append("TRUNCATED ")
        line.fields["truncated"] = True
        return
    hlen = (buf[off] & 0x0F) * 4
    line.kv("SRC", ipv4.ntoa(bytes(buf[off + 12:off + 16])))
    line.kv("DST", ipv4.ntoa(bytes(buf[off + 16:off + 20])))
    line.kv("LEN", _u16(buf, off + 2))
    tos = buf[off + 1]
    line.kv("TOS", "0x%02X" % (tos & 0x1E))
    line.kv("PREC", "0x%02X" % (tos & 0xE0))
    line.kv("TTL", buf[off + 8])
    line.kv("ID", _u16(buf, off + 4))
    frag = _u16(buf, off + 6)
    for bit, name in ((IP_CE, "CE"), (ipv4.FLAG_DF, "DF"), (ipv4.FLAG_MF, "MF")):
        if frag & bit:
            line.flag("ip_flags", name)
    fragment = bool(frag & ipv4.OFFSET_MASK)
    if fragment:
        line.text.append(f"FRAG:{frag & ipv4.OFFSET_MASK} ")
        line.fields["frag"] = frag & ipv4.OFFSET_MASK
    if log.ip_options and hlen > 20:
        if len(buf) < off + hlen:
            line.text.append("TRUNCATED ")
            line.fields["truncated"] = True
            return
        line.hexopt("ip_options", buf[off + 20:off + hlen])
    proto = buf[off + 9]
    l4 = off + hlen
    if proto == ipv4.PROTO_TCP:
        _dump_tcp(line, buf, l4, fragment, log)
    elif proto == ipv4.PROTO_UDP:
        _dump_udp(line, buf, l4, fragment)
    elif proto == ipv4.PROTO_ICMP:
        _dump_icmp(line, buf, l4, fragment, log, quoted)
    else:
        line.kv("PROTO", proto)


class LogRecord:
    """One LOG line: the rule's prefix and level, and the packet's fields (copied).

    text() is the kernel's line (prefix included, ending with a space);
    json() is one JSON object with the same fields plus prefix, level, hook, time.
    """
    __slots__ = ("prefix", "level", "hook", "now", "_text", "fields")

    def __init__(self, log, ctx):
        self.prefix = log.prefix
        self.level = log.level
        self.hook = ctx.hook.name if ctx.hook is not None else None
        self.now = ctx.now
        line = _Line()
        line.kv("IN", ctx.in_name)
        line.kv("OUT", ctx.out_name)
        if ctx.in_name:
            _dump_mac(line, ctx.mac_header, log.macdecode)
        _dump_ipv4(line, ctx.desc.buf, 0, log)
        self._text = "".join(line.text)
        self.fields = line.fields

    def text(self) -> str:
        return self.prefix + self._text

    def json(self) -> str:
        return json.dumps({"prefix": self.prefix, "level": self.level, "hook": self.hook,
                           "time": self.now, **self.fields})


def _dump_mac(line: _Line, header: bytes, macdecode: bool) -> None:
    """dump_ipv4_mac_header(): MAC= the whole link header, or decoded with --log-macdecode."""
    if macdecode and len(header) >= 14:
        line.kv("MACSRC", ":".join("%02x" % b for b in header[6:12]))
        line.kv("MACDST", ":".join("%02x" % b for b in header[0:6]))
        line.kv("MACPROTO", "%04x" % _u16(header, 12))
        return
    line.kv("MAC", ":".join("%02x" % b for b in header))


class NflogRecord:
    """One NFLOG capture: the group's sink writes data (at most --nflog-size bytes) as pcap."""
    __slots__ = ("group", "prefix", "threshold", "hook", "now", "in_name", "out_name", "data",
                 "length")

    def __init__(self, nflog, ctx):
        buf = ctx.desc.buf
        self.group = nflog.group
        self.hook = ctx.hook
        self.prefix = nflog.prefix
        self.threshold = nflog.threshold
        self.now = ctx.now
        self.in_name = ctx.in_name
        self.out_name = ctx.out_name
        self.length = len(buf)
        self.data = bytes(buf if nflog.size is None else buf[:nflog.size])
