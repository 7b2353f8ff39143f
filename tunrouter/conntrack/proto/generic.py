"""Generic tracking for every other protocol (kernel: generic_packet in nf_conntrack_core.c).

The tuple has no ports (both 0); every packet refreshes the entry to
nf_conntrack_generic_timeout (600 s); it is never ASSURED.

GRE has its own timeouts (proto/gre.py).  The reference kernel also has
dedicated trackers for SCTP and UDP-Lite; tunrouter tracks those generically,
so their entries last 600 s and ignore the ports.
Protocols without a kernel tracker (ESP, AH, IPIP, DCCP on 6.18, 253/254 ...)
behave exactly as here.
"""
from tunrouter.conntrack.conn import Conn


def packet(ct: Conn, now: float, s) -> None:
    ct.deadline = now + s.generic_timeout
