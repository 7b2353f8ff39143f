"""UDP tracking (kernel: net/netfilter/nf_conntrack_proto_udp.c, nf_conntrack_udp_packet).

Any valid UDP packet may start a connection.  Timeouts, as the reference
kernel (6.18) does it, not as older kernels and the iptables tutorial say:

* no reply yet: nf_conntrack_udp_timeout (30 s), refreshed by each packet;
* replies seen, but the flow is younger than 2 s (a DNS-style exchange):
  still 30 s and not ASSURED;
* replies seen and a packet more than 2 s after the first one: the flow is a
  stream: nf_conntrack_udp_timeout_stream (120 s; 180 s in 3.x kernels) and
  ASSURED, so early drop spares it.

Not mirrored: IPS_NAT_CLASH entries (a clash-resolution artefact of
concurrent CPUs) and UDP-Lite, which is tracked as a generic protocol here.
"""
from tunrouter.conntrack.conn import IPS_ASSURED, IPS_CONFIRMED, IPS_SEEN_REPLY, Conn
from tunrouter.conntrack.tuple import Tuple

STREAM_AFTER = 2.0           # seconds; kernel: stream_ts = 2 * HZ + jiffies


class UdpConn(Conn):
    """A UDP flow (kernel: struct nf_ct_udp).

    stream_ts  the time after which a replied flow counts as a stream; None
               once it is one (ASSURED), which it stays: 24 bytes saved on
               every long-lived flow
    """
    __slots__ = ("stream_ts",)

    def __init__(self, orig: Tuple, reply: Tuple):
        super().__init__(orig, reply)
        self.stream_ts = 0.0


def packet(ct: UdpConn, now: float, s) -> None:
    """Refresh ct for one packet and assure it once it is a stream (kernel: nf_conntrack_udp_packet)."""
    status = ct.status
    if not status & IPS_CONFIRMED:
        ct.stream_ts = now + STREAM_AFTER
    if status & IPS_SEEN_REPLY:
        if status & IPS_ASSURED:
            ct.deadline = now + s.udp_timeout_stream
        elif now > ct.stream_ts:
            # Still active after two seconds, with traffic both ways: extend
            # the timeout, and assure it: more likely important, not a probe.
            # (The kernel tests the time on every packet; once past, it stays
            # past, so ASSURED stands for it.)
            ct.deadline = now + s.udp_timeout_stream
            ct.status = status | IPS_ASSURED
            ct.stream_ts = None
        else:
            ct.deadline = now + s.udp_timeout
    else:
        ct.deadline = now + s.udp_timeout
