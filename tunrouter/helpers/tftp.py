"""TFTP (kernel: nf_conntrack_tftp.c, nf_nat_tftp.c).

A read or write request (opcode 1 or 2, either direction) expects the
server's answer from any source port: from the reply tuple's source to its
destination address and port (the client, as the server sees it).  Under
NAT nothing in the payload changes; the answer follows the master's NAT.
"""
from tunrouter.helpers.base import ORIGINAL, UDP, Expect, Found, Helper, Packet, Policy

RRQ, WRQ = 1, 2


class Tftp(Helper):
    name = "tftp"
    proto = UDP
    ports = (69,)
    policy = Policy(max_expected=1, timeout=300.0)

    def help(self, pkt: Packet) -> Found | None:
        data = pkt.payload
        if len(data) < 2 or (data[0] << 8 | data[1]) not in (RRQ, WRQ):
            return None
        reply = pkt.other if pkt.direction == ORIGINAL else pkt.tuple
        return Found([Expect(UDP, reply[0], None, reply[1], reply[4])])
