"""What a conntrack helper is, and what it may say about a packet.

A helper is a small class: a name, a protocol, its default ports, an
expectation policy, and help(), which sees one packet's payload of a
connection it is attached to and returns what it found:

    class Toy(Helper):
        name, proto, ports = "toy", TCP, (7777,)
        policy = Policy(max_expected=1, timeout=300)

        def help(self, pkt: Packet) -> Found | None:
            if pkt.direction == ORIGINAL and pkt.payload.startswith(b"LISTEN "):
                port = int(pkt.payload[7:12])
                return Found([pkt.expect_to_sender(port, rewrite=Rewrite(7, 12, port_text))])
            return None

help() gets bytes, never the router's buffer, so a helper cannot corrupt a
packet.  It must not keep references between calls except in the state
object new_state() gives it (one per connection).  Everything it returns is
checked and applied by the router: expectations are registered (under NAT
with a free port chosen and the announced text rewritten), drops counted.
An exception or an overrun of the time budget is a fault the router
contains (helpers.runner).
"""
from collections.abc import Callable
from dataclasses import dataclass, field

from tunrouter.conntrack.tuple import Tuple
from tunrouter.wire import ipv4

TCP, UDP = ipv4.PROTO_TCP, ipv4.PROTO_UDP
ORIGINAL, REPLY = 0, 1


@dataclass(frozen=True, slots=True)
class Policy:
    """nf_conntrack_expect_policy: live expectations per connection, and their lifetime (s)."""
    max_expected: int
    timeout: float


@dataclass(frozen=True, slots=True)
class Rewrite:
    """Payload bytes [start, end) announce an address and port; under NAT they become
    text(address, port) for the address and port the peer must use instead."""
    start: int
    end: int
    text: Callable[[bytes, int], bytes]


@dataclass(frozen=True, slots=True)
class Expect:
    """A connection to expect: proto from src:sport (None: any) to dst:dport.

    Under NAT the router may move dport to a free port (rewrite then says
    where the payload announced it), and the expected connection follows
    the master's translation back to the port announced.
    """
    proto: int
    src: bytes | None
    sport: int | None
    dst: bytes
    dport: int
    rewrite: Rewrite | None = None


@dataclass(slots=True)
class Found:
    """What help() found: expectations to register; or drop, the reason the packet must
    be dropped (the kernel's NF_DROP, e.g. a partial command); log: one line worth
    telling the operator (e.g. an announced address that is not the sender's)."""
    expects: list[Expect] = field(default_factory=list)
    drop: str | None = None
    log: str | None = None


class Packet:
    """One packet as a helper sees it.

    payload     the TCP or UDP payload (bytes)
    direction   ORIGINAL or REPLY, relative to the connection's first packet
    seq         the TCP sequence number as received (None for UDP)
    tuple       this direction's tuple (src, dst, proto, sport, dport), as
                conntrack recorded it: before this router's NAT for ORIGINAL
    other       the other direction's tuple: other[1] is the sender as its peer sees it
    nat         whether the connection is translated (NAT rewrites apply)
    state       the helper's per-connection state (Helper.new_state())
    established whether the connection has seen a reply (ctstate ESTABLISHED)
    """
    __slots__ = ("direction", "established", "nat", "other", "payload", "seq", "state", "tuple")

    def __init__(self, payload: bytes, direction: int, seq: int | None, tup: Tuple, other: Tuple,
                 nat: bool, state, established: bool = True):
        self.payload, self.direction, self.seq = payload, direction, seq
        self.tuple, self.other, self.nat, self.state = tup, other, nat, state
        self.established = established

    def expect_to_sender(self, port: int, proto: int = TCP, any_source: bool = False,
                         rewrite: Rewrite | None = None) -> Expect:
        """The usual expectation: the sender's peer connects back to the sender (as the
        peer sees it) on port; from the peer's address, or from anywhere."""
        src = None if any_source else self.other[0]
        return Expect(proto, src, None, self.other[1], port, rewrite)


class Helper:
    """Subclass and set name, proto, ports, policy; implement help()."""
    name: str = ""
    proto: int = TCP
    ports: tuple[int, ...] = ()
    policy: Policy = Policy(1, 300.0)

    def new_state(self):
        """Per-connection state, kept on the connection and given back in Packet.state."""
        return

    def help(self, pkt: Packet) -> Found | None:
        raise NotImplementedError
