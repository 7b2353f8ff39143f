"""Packet builders and checkers for tests.  Scapy lives here, never in the router."""
from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, Raw, raw

from tunrouter.core.port import Kind, PortSpec
from tunrouter.core.router import Router, StaticRoute


def ip_bytes(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def frame(pkt) -> memoryview:
    """A writable view of pkt's bytes, as the driver lends the router one."""
    return memoryview(bytearray(raw(pkt)))


def icmp_echo(src: str, dst: str, ttl: int = 64, ident: int = 7, seq: int = 1,
              data: bytes = b"ping", **ip) -> memoryview:
    return frame(IP(src=src, dst=dst, ttl=ttl, **ip) / ICMP(id=ident, seq=seq) / Raw(data))


def udp4(src: str, dst: str, sport: int, dport: int, data: bytes = b"x", **ip) -> memoryview:
    return frame(IP(src=src, dst=dst, **ip) / UDP(sport=sport, dport=dport) / Raw(data))


def tcp4(src: str, dst: str, sport: int, dport: int, flags: str = "S", data: bytes = b"",
         seq: int = 1000, ack: int = 0, **ip) -> memoryview:
    return frame(IP(src=src, dst=dst, **ip) / TCP(sport=sport, dport=dport, flags=flags,
                                                  seq=seq, ack=ack) / Raw(data))


def parse_out(out_frame) -> IP:
    return IP(bytes(out_frame))


def parse_eth(out_frame) -> Ether:
    return Ether(bytes(out_frame))


# The unit-test topology: one TUN port, one TAP port, one TUN "wan" port.
LAN_TUN, LAN_TAP, WAN = 0, 1, 2
ROUTER_MAC = bytes.fromhex("020000000001")
H1, H2, SRV = "10.1.0.2", "10.2.0.2", "203.0.113.80"
R_LAN, R_TAP, R_WAN = "10.1.0.1", "10.2.0.1", "203.0.113.1"
H2_MAC = "02:00:00:00:00:22"


def make_router(mtu_wan: int = 1500, routes=()) -> Router:
    ports = [
        PortSpec(LAN_TUN, "lan0", Kind.TUN, ip_bytes(R_LAN), 24),
        PortSpec(LAN_TAP, "lan1", Kind.TAP, ip_bytes(R_TAP), 24, mac=ROUTER_MAC),
        PortSpec(WAN, "wan0", Kind.TUN, ip_bytes(R_WAN), 24, mtu=mtu_wan),
    ]
    return Router(ports, [StaticRoute(ip_bytes(p), n, ip_bytes(v) if v else None, port)
                          for p, n, v, port in routes])


def eth_to_router(pkt, src_mac: str = H2_MAC, dst_mac: str | None = None) -> memoryview:
    return frame(Ether(src=src_mac, dst=dst_mac or ":".join("%02x" % b for b in ROUTER_MAC)) / pkt)


def arp_reply_from(ip: str, mac: str, to_ip: str = R_TAP) -> memoryview:
    return frame(Ether(src=mac, dst=":".join("%02x" % b for b in ROUTER_MAC))
                 / ARP(op=2, hwsrc=mac, psrc=ip, hwdst=":".join("%02x" % b for b in ROUTER_MAC),
                       pdst=to_ip))
