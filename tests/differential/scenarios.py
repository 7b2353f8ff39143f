"""Packet sequences for the differential conntrack tests, and what Linux made of them.

A scenario is data: steps sent in order from host A (10.71.0.2, the client) or
host B (10.72.0.2, the server), each one waited for on the far side before the
next goes, plus `kernel`, the conntrack table Linux 6.18 listed afterwards
(normalized, see normalize.py).  The recording documents kernel behaviour for
readers and is checked against the live kernel on every run; tunrouter is
compared with both.

With KERNEL_RULES (topology.py) the kernel forwards every packet here, INVALID
ones included, so in all scenarios every step arrives.
"""
from dataclasses import dataclass

from normalize import Conn

CLIENT_PORT = 40000
TCP_PORT = 80
UDP_PORT = 53
ICMP_ID = 0x1234
# A GRE version 0 header (no checksum, key or sequence) announcing IPv4.
GRE_V0_HEADER = bytes.fromhex("0000 0800")


@dataclass(frozen=True)
class Tcp:
    side: str                    # "a" or "b": who sends
    flags: str                   # scapy's letters: S, SA, A, PA, FA, R, RA, SF
    seq: int
    ack: int = 0
    payload: int = 0             # bytes of data
    window: int = 8192
    client_port: int = CLIENT_PORT
    server_port: int = TCP_PORT


@dataclass(frozen=True)
class Udp:
    side: str
    payload: int = 16
    client_port: int = CLIENT_PORT
    server_port: int = UDP_PORT


@dataclass(frozen=True)
class Icmp:
    side: str
    type: int                    # 8 echo request, 0 echo reply
    id: int = ICMP_ID
    seq: int = 1


@dataclass(frozen=True)
class IcmpError:
    side: str
    type: int
    code: int
    quoting: Udp                 # the datagram the error is about, sent by the other side


@dataclass(frozen=True)
class Proto:
    side: str
    proto: int                   # IP protocol number
    payload: bytes


@dataclass(frozen=True)
class Wait:
    seconds: float


Step = Tcp | Udp | Icmp | IcmpError | Proto | Wait


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    kernel: tuple[Conn, ...]     # the table Linux 6.18 listed after the steps


# The tuples as conntrack prints them.
TCP_AB = f"src=10.71.0.2 dst=10.72.0.2 sport={CLIENT_PORT} dport={TCP_PORT}"
TCP_BA = f"src=10.72.0.2 dst=10.71.0.2 sport={TCP_PORT} dport={CLIENT_PORT}"
UDP_AB = f"src=10.71.0.2 dst=10.72.0.2 sport={CLIENT_PORT} dport={UDP_PORT}"
UDP_BA = f"src=10.72.0.2 dst=10.71.0.2 sport={UDP_PORT} dport={CLIENT_PORT}"

# Client ISN 1000, server ISN 5000.
HANDSHAKE = (
    Tcp("a", "S", seq=1000),
    Tcp("b", "SA", seq=5000, ack=1001),
    Tcp("a", "A", seq=1001, ack=5001),
)
# 100 bytes from the client, 200 from the server, each acknowledged.
DATA = (
    Tcp("a", "PA", seq=1001, ack=5001, payload=100),
    Tcp("b", "A", seq=5001, ack=1101),
    Tcp("b", "PA", seq=5001, ack=1101, payload=200),
    Tcp("a", "A", seq=1101, ack=5201),
)
# The client closes first.
CLOSE = (
    Tcp("a", "FA", seq=1101, ack=5201),
    Tcp("b", "FA", seq=5201, ack=1102),
    Tcp("a", "A", seq=1102, ack=5202),
)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "tcp_syn_only",
        (Tcp("a", "S", seq=1000),),
        # Waits 120 s for an answer.
        kernel=(Conn("tcp/6", "SYN_SENT", TCP_AB, TCP_BA, ("UNREPLIED",), "tcp_timeout_syn_sent"),),
    ),
    Scenario(
        "tcp_syn_synack",
        HANDSHAKE[:2],
        # Replied, not yet ASSURED: that needs the client's ACK.
        kernel=(Conn("tcp/6", "SYN_RECV", TCP_AB, TCP_BA, (), "tcp_timeout_syn_recv"),),
    ),
    Scenario(
        "tcp_handshake_data_close",
        (*HANDSHAKE, *DATA, *CLOSE),
        # FIN both ways and the last ACK: TIME_WAIT, which keeps ASSURED.
        kernel=(Conn("tcp/6", "TIME_WAIT", TCP_AB, TCP_BA, ("ASSURED",), "tcp_timeout_time_wait"),),
    ),
    Scenario(
        "tcp_ack_without_syn",
        (Tcp("a", "A", seq=1000, ack=5000),),
        # nf_conntrack_tcp_loose=1 picks the flow up mid-stream as ESTABLISHED, but
        # without a reply the timeout is capped at 300 s (the unacknowledged timeout).
        kernel=(Conn("tcp/6", "ESTABLISHED", TCP_AB, TCP_BA, ("UNREPLIED",),
                     "tcp_timeout_max_retrans|tcp_timeout_unacknowledged"),),
    ),
    Scenario(
        "tcp_ack_pickup_both_ways",
        (Tcp("a", "PA", seq=1000, ack=5000, payload=10),
         Tcp("b", "A", seq=5000, ack=1010),
         Tcp("a", "A", seq=1010, ack=5000)),
        # A picked-up flow is ASSURED, with the full 5 days, on the first packet after a reply.
        kernel=(Conn("tcp/6", "ESTABLISHED", TCP_AB, TCP_BA, ("ASSURED",), "tcp_timeout_established"),),
    ),
    Scenario(
        "tcp_syn_after_fin",
        (*HANDSHAKE, *DATA, *CLOSE, Tcp("a", "S", seq=2000)),
        # A SYN in TIME_WAIT after a FIN close kills the old entry and starts a new one:
        # one entry, SYN_SENT, not ASSURED.
        kernel=(Conn("tcp/6", "SYN_SENT", TCP_AB, TCP_BA, ("UNREPLIED",), "tcp_timeout_syn_sent"),),
    ),
    Scenario(
        "tcp_rst_exact",
        (*HANDSHAKE, *DATA, Tcp("a", "R", seq=1101)),
        # An RST at exactly the acknowledged sequence closes; the replied entry stays 10 s.
        kernel=(Conn("tcp/6", "CLOSE", TCP_AB, TCP_BA, ("ASSURED",), "tcp_timeout_close"),),
    ),
    Scenario(
        "tcp_rst_in_window_not_exact",
        (*HANDSHAKE, *DATA, Tcp("a", "R", seq=1101 + 1000)),
        # In the window but not exact (RFC 5961): the state stays ESTABLISHED, yet the
        # RST still sets the 10 s close timeout.
        kernel=(Conn("tcp/6", "ESTABLISHED", TCP_AB, TCP_BA, ("ASSURED",), "tcp_timeout_close"),),
    ),
    Scenario(
        "tcp_syn_answered_by_rst",
        (Tcp("a", "S", seq=1000), Tcp("b", "RA", seq=0, ack=1001)),
        # An RST before any reply was seen deletes the entry at once.
        kernel=(),
    ),
    Scenario(
        "tcp_data_far_out_of_window",
        (*HANDSHAKE, Tcp("a", "PA", seq=1001 + 1_000_000, ack=5001, payload=100)),
        # INVALID ("SEQ is over upper bound"): forwarded, but neither state nor timeout move.
        kernel=(Conn("tcp/6", "ESTABLISHED", TCP_AB, TCP_BA, ("ASSURED",), "tcp_timeout_established"),),
    ),
    Scenario(
        "tcp_syn_fin",
        (Tcp("a", "SF", seq=1000),),
        # Not a valid flag combination: INVALID, no entry.
        kernel=(),
    ),
    Scenario(
        "udp_one_way",
        (Udp("a"),),
        kernel=(Conn("udp/17", None, UDP_AB, UDP_BA, ("UNREPLIED",), "udp_timeout"),),
    ),
    Scenario(
        "udp_with_reply",
        (Udp("a"), Udp("b")),
        # A quick request/reply is not a stream: 30 s and not ASSURED.
        kernel=(Conn("udp/17", None, UDP_AB, UDP_BA, (), "udp_timeout"),),
    ),
    Scenario(
        "udp_stream",
        (Udp("a"), Udp("b"), Udp("a"), Udp("b"), Wait(2.5), Udp("a"), Udp("b")),
        # Replied and still active more than 2 s after its first packet: ASSURED, 120 s.
        kernel=(Conn("udp/17", None, UDP_AB, UDP_BA, ("ASSURED",), "udp_timeout_stream"),),
    ),
    Scenario(
        "icmp_echo_reply",
        (Icmp("a", type=8), Icmp("b", type=0)),
        # The reply does not end the entry; ICMP is never ASSURED.
        kernel=(Conn("icmp/1", None, f"src=10.71.0.2 dst=10.72.0.2 type=8 code=0 id={ICMP_ID}",
                     f"src=10.72.0.2 dst=10.71.0.2 type=0 code=0 id={ICMP_ID}", (), "icmp_timeout"),),
    ),
    Scenario(
        "icmp_echo_no_reply",
        (Icmp("a", type=8),),
        kernel=(Conn("icmp/1", None, f"src=10.71.0.2 dst=10.72.0.2 type=8 code=0 id={ICMP_ID}",
                     f"src=10.72.0.2 dst=10.71.0.2 type=0 code=0 id={ICMP_ID}", ("UNREPLIED",),
                     "icmp_timeout"),),
    ),
    Scenario(
        "icmp_error_quoting_tracked_udp",
        (Udp("a"), IcmpError("b", type=3, code=3, quoting=Udp("a"))),
        # The error is RELATED to the flow it quotes; it does not count as a reply.
        kernel=(Conn("udp/17", None, UDP_AB, UDP_BA, ("UNREPLIED",), "udp_timeout"),),
    ),
    Scenario(
        "icmp_error_quoting_nothing_tracked",
        (IcmpError("b", type=3, code=3, quoting=Udp("a", client_port=40999)),),
        # INVALID; an error never creates an entry.
        kernel=(),
    ),
    Scenario(
        "generic_proto_253",
        (Proto("a", 253, payload=b"generic payload"),),
        # No tracker for 253: the generic one, addresses only, 600 s.
        kernel=(Conn("unknown/253", None, "src=10.71.0.2 dst=10.72.0.2", "src=10.72.0.2 dst=10.71.0.2",
                     ("UNREPLIED",), "generic_timeout"),),
    ),
    Scenario(
        "gre_v0",
        (Proto("a", 47, payload=GRE_V0_HEADER + b"inner packet"),),
        # GRE has its own tracker; version 0 carries no keys to track, so both are 0.
        kernel=(Conn("gre/47", None, "src=10.71.0.2 dst=10.72.0.2 srckey=0x0 dstkey=0x0",
                     "src=10.72.0.2 dst=10.71.0.2 srckey=0x0 dstkey=0x0", ("UNREPLIED",), "gre_timeout"),),
    ),
)
