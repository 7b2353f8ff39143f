"""L4 trackers, one module per protocol (kernel: struct nf_conntrack_l4proto; OVS ct_l4_proto).

Each module offers `packet(ct, ...)`, which runs one packet through an entry
(the first packet too, as the kernel does) and sets ct.deadline when the
packet refreshes it.  Where not every packet may start a connection (TCP,
ICMP), `new(...)` builds the entry or returns why it may not (a str); UDP
and generic entries are built by the table directly.

tcp.packet returns what the other trackers need not, since they accept any
packet of their entries:

    None      accepted
    a str     INVALID; the text is the kernel's log message for the case
    KILL      accepted, and the entry must be deleted now (RST before any reply)
    REPEAT    the entry must be deleted and the packet tracked again as the
              first packet of a new connection (SYN reopening TIME_WAIT or
              CLOSE; the kernel's -NF_REPEAT)

The table owns everything else: lookup, SEEN_REPLY, confirmation, timers,
events.  Header errors (kernel: tcp_error, udp_error, icmp_error) are checked
by the table before lookup, since it parses the header to build the tuple.
"""

KILL = "kill"
REPEAT = "repeat"


def l4_checksum_ok(buf: memoryview, off: int, proto: int) -> bool:
    """Verify a TCP or UDP checksum over the IPv4 pseudo-header (kernel: nf_ip_checksum).

    Like the kernel, the sum covers everything from off to the end of the
    packet.  The one's-complement sum of 16-bit words equals the value of the
    byte string modulo 0xFFFF (2**16 == 1 mod 0xFFFF), so the pseudo-header
    (addresses at IPv4 offsets 12..20, protocol, length) and the segment can
    be summed as integers; an odd length is padded with a zero byte (x 256).
    A correct segment sums to 0xFFFF, i.e. 0 modulo 0xFFFF and not 0: the
    protocol word makes the sum non-zero.
    """
    seg = buf[off:]
    n = len(seg)
    total = int.from_bytes(buf[12:20], "big") + proto + n + (int.from_bytes(seg, "big") << ((n & 1) << 3))
    return total % 0xFFFF == 0


def icmp_checksum_ok(buf: memoryview, off: int) -> bool:
    """Verify an ICMP checksum (no pseudo-header): the message sums to 0xFFFF.

    An all-zero message sums to 0, which is not a valid checksum.
    """
    seg = buf[off:]
    total = int.from_bytes(seg, "big") << ((len(seg) & 1) << 3)
    return total != 0 and total % 0xFFFF == 0
