"""GRE tracking (kernel: net/netfilter/nf_conntrack_proto_gre.c, gre_packet).

No reply seen yet: nf_conntrack_gre_timeout (30 s), refreshed by each
packet.  Once a reply has been seen, nf_conntrack_gre_timeout_stream (180 s)
and ASSURED ("more likely to be important, and not a probe").  The kernel
fills the tuple's keys from PPTP's key map, which only its PPTP helper
populates; tunrouter has no PPTP helper, so the keys are 0 both ways, as
the kernel prints them without it (`srckey=0x0 dstkey=0x0`).
"""
from tunrouter.conntrack.conn import IPS_ASSURED, IPS_SEEN_REPLY, Conn


def packet(ct: Conn, now: float, s) -> None:
    if ct.status & IPS_SEEN_REPLY:
        ct.deadline = now + s.gre_timeout_stream
        ct.status |= IPS_ASSURED
    else:
        ct.deadline = now + s.gre_timeout
