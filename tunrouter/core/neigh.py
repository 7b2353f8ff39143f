"""ARP neighbour cache for TAP ports, after the kernel's neighbour state machine.

States (net/core/neighbour.c, simplified to what a router on a LAN needs):
  INCOMPLETE  request broadcast, packets queued; retried every RETRANS_TIME,
              MCAST_SOLICIT times, then FAILED: the queue is answered with
              ICMP host unreachable (arp_error_report) and the entry removed.
  REACHABLE   confirmed within REACHABLE_TIME; used as is.
  STALE       older than that; still used, and the first use starts PROBE.
  PROBE       unicast requests every RETRANS_TIME, UCAST_SOLICIT times; an
              answer makes it REACHABLE, silence removes it.
A STALE entry unused for GC_STALE_TIME is removed.

On a port whose frames carry a virtio-net header (core.offload) every frame
made here starts with an empty one: the link header is that plus Ethernet.
"""
import enum

from tunrouter.wire import arp, ether

RETRANS_TIME = 1.0
MCAST_SOLICIT = 3
UCAST_SOLICIT = 3
REACHABLE_TIME = 30.0
GC_STALE_TIME = 60.0
QUEUE_MAX = 101          # kernel unres_qlen default


class State(enum.Enum):
    INCOMPLETE = "INCOMPLETE"
    REACHABLE = "REACHABLE"
    STALE = "STALE"
    PROBE = "PROBE"


class Neighbour:
    __slots__ = (
        "confirmed",
        "eth",
        "hdr",
        "ip",
        "mac",
        "next_probe",
        "port",
        "probes",
        "queue",
        "state",
        "used",
    )

    def __init__(self, port: int, ip: bytes, now: float):
        self.port = port
        self.ip = ip
        self.mac = b""
        self.eth = b""              # Ethernet header towards this neighbour, built once
        self.hdr = b""              # what goes before a complete packet: eth, after any port prefix
        self.state = State.INCOMPLETE
        self.confirmed = now
        self.used = now
        self.probes = 0
        self.next_probe = now
        self.queue: list[bytes] = []


class NeighbourTable:
    """Neighbours keyed by (port, IPv4 address).

    Results are frames to write as (port, frame) and packets whose next hop
    failed to resolve (for the router to answer with ICMP host unreachable).
    """

    def __init__(self, macs: dict[int, bytes], addrs: dict[int, bytes],
                 prefixes: dict[int, bytes] | None = None):
        self._macs = macs               # port -> the router's MAC on it
        self._addrs = addrs             # port -> the router's address on it
        self._prefixes = prefixes or {}  # port -> what precedes each frame (a virtio-net header)
        self._entries: dict[tuple[int, bytes], Neighbour] = {}
        self.deadline = float("inf")

    def entries(self) -> list[Neighbour]:
        return list(self._entries.values())

    def ready(self, port: int, ip: bytes, now: float, out: list) -> Neighbour | None:
        """The neighbour ip on port if its MAC is known, marked used (a STALE one
        starts PROBE, its request going to out); None while it is not."""
        n = self._entries.get((port, ip))
        if n is None or n.state is State.INCOMPLETE:
            return None
        n.used = now
        if n.state is State.REACHABLE and now - n.confirmed > REACHABLE_TIME:
            n.state = State.STALE
        if n.state is State.STALE:
            n.state, n.probes, n.next_probe = State.PROBE, 0, now
            self._probe(n, now, out)
        return n

    def resolve(self, port: int, ip: bytes, packet: bytes | memoryview, now: float,
                out: list, on_full) -> None:
        """Send packet to ip on port: framed now, or queued behind an ARP request."""
        n = self.ready(port, ip, now, out)
        if n is not None:
            out.append((port, n.hdr + packet))
            return
        n = self._entries.get((port, ip))
        if n is None:
            n = self._entries[(port, ip)] = Neighbour(port, ip, now)
            self._probe(n, now, out)
        if len(n.queue) >= QUEUE_MAX:
            on_full()
            return
        n.queue.append(bytes(packet))

    def learn(self, port: int, ip: bytes, mac: bytes, now: float, out: list,
              create: bool) -> None:
        """An ARP message from ip/mac: confirm it and flush what waited for it.

        create: make an entry if none exists (a request addressed to us, as
        arp_process() does); gratuitous or unsolicited ARP only updates.
        """
        n = self._entries.get((port, ip))
        if n is None:
            if not create:
                return
            n = self._entries[(port, ip)] = Neighbour(port, ip, now)
        if n.mac != mac:
            n.mac = mac
            n.eth = ether.header(mac, self._macs[port], ether.ETH_P_IP)
            n.hdr = self._prefixes.get(port, b"") + n.eth
        n.state, n.confirmed, n.probes = State.REACHABLE, now, 0
        for packet in n.queue:
            out.append((port, n.hdr + packet))
        n.queue.clear()
        self.deadline = min(self.deadline, now + REACHABLE_TIME)

    def tick(self, now: float, out: list, failed: list) -> None:
        """Retry, age and remove entries; packets of failed entries go to failed."""
        deadline = float("inf")
        for key, n in list(self._entries.items()):
            if n.state in (State.INCOMPLETE, State.PROBE):
                limit = MCAST_SOLICIT if n.state is State.INCOMPLETE else UCAST_SOLICIT
                if now >= n.next_probe:
                    if n.probes >= limit:
                        failed.extend((n.port, p) for p in n.queue)
                        del self._entries[key]
                        continue
                    self._probe(n, now, out)
                deadline = min(deadline, n.next_probe)
            elif n.state is State.REACHABLE:
                if now - n.confirmed >= REACHABLE_TIME:
                    n.state = State.STALE
                else:
                    deadline = min(deadline, n.confirmed + REACHABLE_TIME)
            if n.state is State.STALE:
                if now - n.used >= GC_STALE_TIME:
                    del self._entries[key]
                    continue
                deadline = min(deadline, n.used + GC_STALE_TIME)
        self.deadline = deadline

    def _probe(self, n: Neighbour, now: float, out: list) -> None:
        """An ARP request: broadcast while INCOMPLETE, unicast to the known MAC in PROBE."""
        mac = self._macs[n.port]
        dst = n.mac if n.state is State.PROBE else ether.BROADCAST
        body = arp.emit(arp.OP_REQUEST, mac, self._addrs[n.port], b"\0" * 6, n.ip)
        out.append((n.port, self._prefixes.get(n.port, b"") + ether.header(dst, mac, ether.ETH_P_ARP)
                    + body))
        n.probes += 1
        n.next_probe = now + RETRANS_TIME
        self.deadline = min(self.deadline, n.next_probe)
