"""Send crafted packets from inside A and B and see each one arrive on the other side.

The sockets are opened inside the host namespaces (pyroute2 pushns/popns) and
keep working from the test process afterwards, so a scenario costs no process
start per packet.  Sending is a raw IPv4 socket (IPPROTO_RAW: the header is
ours) carrying HARNESS_MARK, the one mark the muted hosts let out.  Arrival is
watched with a packet socket on the receiver's device and recognised by source
address and IP id, which the router does not change.  Waiting for arrival
before the next step keeps the order the scenario wrote even though the
packets cross the router from two directions.
"""
import socket
import time
from collections.abc import Callable, Sequence
from typing import Self

from pyroute2 import netns
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.packet import Packet, Raw, raw

from scenarios import Icmp, IcmpError, Proto, Step, Tcp, Udp, Wait
from topology import A_ADDR, B_ADDR, HARNESS_MARK, HOST_DEVICE

ETH_P_IP = 0x0800
ARRIVAL_TIMEOUT = 1.0          # seconds; the kernel forwards in well under a millisecond
PROBE_ID_BASE = 0xF000         # IP ids of readiness probes; scenario steps count from 1


class Endpoint:
    """One host's sending socket and arrival watcher."""

    def __init__(self, ns: str):
        netns.pushns(ns)
        try:
            self.tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            self.tx.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, HARNESS_MARK)
            # SOCK_DGRAM: bare IP packets from a veth and a TUN device alike.
            self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
            self.rx.bind((HOST_DEVICE, 0))
        finally:
            netns.popns()

    def send(self, pkt: Packet) -> None:
        self.tx.sendto(raw(pkt), (pkt[IP].dst, 0))

    def arrived(self, src: str, ip_id: int, timeout: float = ARRIVAL_TIMEOUT) -> bool:
        """Whether a packet from src with this IP id is received within timeout seconds."""
        return self.catch(lambda ip: (ip.src, ip.id) == (src, ip_id), timeout) is not None

    def catch(self, wanted: Callable[[IP], bool], timeout: float = ARRIVAL_TIMEOUT) -> bytes | None:
        """The first incoming packet within timeout seconds that wanted() accepts, as received.

        Incoming packets it does not accept are skipped (and lost to later calls).
        """
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.rx.settimeout(left)
            try:
                data, (_dev, _proto, pkttype, *_) = self.rx.recvfrom(65535)
            except TimeoutError:
                return None
            if pkttype == socket.PACKET_OUTGOING:
                continue
            if wanted(IP(data)):
                return data
        return None

    def close(self) -> None:
        self.tx.close()
        self.rx.close()


class Hosts:
    """Endpoints in A and B, by the scenario's side names."""

    def __init__(self, a_ns: str, b_ns: str):
        self.by_side = {"a": Endpoint(a_ns)}
        try:
            self.by_side["b"] = Endpoint(b_ns)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for e in self.by_side.values():
            e.close()

    def send(self, side: str, pkt: Packet) -> bool:
        """Send from side; True if it arrived on the other side."""
        receiver = self.by_side["b" if side == "a" else "a"]
        self.by_side[side].send(pkt)
        return receiver.arrived(pkt[IP].src, pkt[IP].id)

    def prime(self, timeout: float = 15) -> None:
        """Until a probe gets through both ways: the router forwards and the neighbours are known."""
        for side in ("a", "b"):
            deadline = time.monotonic() + timeout
            n = 0
            while not self.send(side, build(Udp(side, client_port=9, server_port=9), PROBE_ID_BASE + n)):
                n += 1
                assert time.monotonic() < deadline, f"no probe from {side} got through the router"

    def play(self, steps: Sequence[Step]) -> tuple[bool, ...]:
        """Send the steps in order; for each packet, whether it was forwarded."""
        delivered = []
        for ip_id, step in enumerate(steps, start=1):
            if isinstance(step, Wait):
                time.sleep(step.seconds)
            else:
                delivered.append(self.send(step.side, build(step, ip_id)))
        return tuple(delivered)


def addresses(side: str) -> tuple[str, str]:
    return (A_ADDR, B_ADDR) if side == "a" else (B_ADDR, A_ADDR)


def ports(step: Tcp | Udp) -> tuple[int, int]:
    """A is the client, B the server."""
    if step.side == "a":
        return step.client_port, step.server_port
    return step.server_port, step.client_port


def build(step: Step, ip_id: int, ttl: int = 64) -> Packet:
    src, dst = addresses(step.side)
    ip = IP(src=src, dst=dst, id=ip_id, ttl=ttl)
    match step:
        case Tcp():
            sport, dport = ports(step)
            return ip / TCP(sport=sport, dport=dport, flags=step.flags, seq=step.seq, ack=step.ack,
                            window=step.window) / (b"d" * step.payload)
        case Udp():
            sport, dport = ports(step)
            return ip / UDP(sport=sport, dport=dport) / (b"u" * step.payload)
        case Icmp():
            return ip / ICMP(type=step.type, id=step.id, seq=step.seq) / b"echo-data"
        case IcmpError():
            # The quoted datagram as its receiver saw it: one router hop, so TTL 63.
            quoted = raw(build(step.quoting, ip_id=0, ttl=ttl - 1))
            return ip / ICMP(type=step.type, code=step.code) / quoted
        case Proto():
            return IP(src=src, dst=dst, id=ip_id, ttl=ttl, proto=step.proto) / Raw(step.payload)
    raise TypeError(f"not a packet step: {step!r}")
