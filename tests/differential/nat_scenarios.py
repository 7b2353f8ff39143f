"""NAT flows for the differential tests, and what Linux made of them.

The topology is topology.py's, with a second address on each host so that
two inside hosts can collide and one outside host can be two servers:

    A: A1 10.71.0.2, A2 10.71.0.3 (inside)    router: a0 10.71.0.1, b0 10.72.0.1 (WAN)
    B: B1 10.72.0.2, B2 10.72.0.3 (outside)   B routes SNAT_POOL (10.72.0.8/29) via the router

A scenario names the nat table's rules (`-A CHAIN ...`, given to the kernel as
`iptables -t nat` commands and to tunrouter as an iptables-restore file, next to
KERNEL_RULES's filter table) and its steps.  A step is a packet with explicit
addresses (Send), or one made from what an earlier step delivered (ReplyTo,
ErrorAbout): the host that received that packet answers it as it arrived, so a
reply goes to whatever address and port the NAT chose, as a real stack's would.

Recorded per scenario, from Linux 6.18: `kernel`, the conntrack table afterwards
(normalize.py), and `received`, what each step delivered, as describe() in
test_nat_vs_kernel.py prints it.  A port the NAT had to choose (an original
source port or ICMP id it could not keep) is shown as REMAPPED in both: the
kernel picks it at random, so only the fact that it moved, and the range it
stays in, can be compared.
"""
from dataclasses import dataclass

from normalize import Conn

A1, A2 = "10.71.0.2", "10.71.0.3"
B1, B2 = "10.72.0.2", "10.72.0.3"
LAN_GW, WAN = "10.71.0.1", "10.72.0.1"
SNAT_POOL = "10.72.0.8/29"
SECOND_ADDRESSES = {"a": A2, "b": B2}
ICMP_ID = 0x1234
REMAPPED = "<remapped>"          # a port or ICMP id the NAT chose, inside its allowed range


@dataclass(frozen=True)
class Datagram:
    sport: int
    dport: int
    payload: int = 16


@dataclass(frozen=True)
class Segment:
    sport: int
    dport: int
    flags: str                   # scapy's letters
    seq: int
    ack: int = 0
    payload: int = 0


@dataclass(frozen=True)
class Echo:
    id: int = ICMP_ID
    seq: int = 1


@dataclass(frozen=True)
class Send:
    """side ("a" or "b") sends src → dst; it arrives on the other side, or with
    answered=True the router answers it (an ICMP error back to side) and nothing crosses."""
    side: str
    src: str
    dst: str
    l4: Datagram | Segment | Echo
    answered: bool = False


@dataclass(frozen=True)
class ReplyTo:
    """The host that received step `step` (numbered from 1) answers it: addresses and ports
    swapped from what arrived; TCP takes flags/seq/ack here, ICMP echo becomes an echo reply."""
    step: int
    flags: str = ""
    seq: int = 0
    ack: int = 0
    payload: int | None = None   # UDP default 16 bytes, TCP 0


@dataclass(frozen=True)
class ErrorAbout:
    """The host that received step `step` sends an ICMP error quoting it as it arrived."""
    step: int
    type: int = 3
    code: int = 3                # port unreachable


NatStep = Send | ReplyTo | ErrorAbout


@dataclass(frozen=True)
class NatScenario:
    name: str
    rules: tuple[str, ...]             # the nat table's rules
    steps: tuple[NatStep, ...]
    kernel: tuple[Conn, ...]           # the table Linux 6.18 listed, chosen ports as REMAPPED
    received: tuple[str, ...]          # per step, what arrived (describe()), chosen ports as REMAPPED
    remap_range: tuple[int, int] | None = None   # where a chosen port must lie; None: its class
    xfail: str | None = None           # why tunrouter differs on purpose (marks its run xfail)


def ports(src: str, dst: str, sport: int | str, dport: int | str) -> str:
    return f"src={src} dst={dst} sport={sport} dport={dport}"


def icmp(src: str, dst: str, type_: int, ident: int | str) -> str:
    return f"src={src} dst={dst} type={type_} code=0 id={ident}"


def udp(orig: str, reply: str, flags: tuple[str, ...] = ()) -> Conn:
    return Conn("udp/17", None, orig, reply, flags, "udp_timeout")


MASQUERADE = ("-A POSTROUTING -o b0 -j MASQUERADE",)
DNAT_UDP = ("-A PREROUTING -i b0 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.71.0.2:53",)
DNAT_TCP = ("-A PREROUTING -i b0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.71.0.2:80",)

NAT_SCENARIOS: tuple[NatScenario, ...] = (
    NatScenario(
        "masq_udp_request_reply",
        MASQUERADE,
        (Send("a", A1, B1, Datagram(40000, 53)), ReplyTo(1)),
        # The source becomes b0's address; the port is free, so it is kept.
        kernel=(udp(ports(A1, B1, 40000, 53), ports(B1, WAN, 53, 40000)),),
        received=("udp 10.72.0.1:40000 > 10.72.0.2:53",
                  "udp 10.72.0.2:53 > 10.71.0.2:40000"),
    ),
    NatScenario(
        "masq_tcp_handshake_data_close",
        MASQUERADE,
        (Send("a", A1, B1, Segment(40000, 80, "S", 1000)),
         ReplyTo(1, "SA", 5000, 1001),
         Send("a", A1, B1, Segment(40000, 80, "A", 1001, 5001)),
         Send("a", A1, B1, Segment(40000, 80, "PA", 1001, 5001, payload=100)),
         ReplyTo(4, "A", 5001, 1101),
         ReplyTo(4, "PA", 5001, 1101, payload=200),
         Send("a", A1, B1, Segment(40000, 80, "A", 1101, 5201)),
         Send("a", A1, B1, Segment(40000, 80, "FA", 1101, 5201)),
         ReplyTo(8, "FA", 5201, 1102),
         Send("a", A1, B1, Segment(40000, 80, "A", 1102, 5202))),
        kernel=(Conn("tcp/6", "TIME_WAIT", ports(A1, B1, 40000, 80), ports(B1, WAN, 80, 40000),
                     ("ASSURED",), "tcp_timeout_time_wait"),),
        received=("tcp S 10.72.0.1:40000 > 10.72.0.2:80",
                  "tcp SA 10.72.0.2:80 > 10.71.0.2:40000",
                  "tcp A 10.72.0.1:40000 > 10.72.0.2:80",
                  "tcp PA 10.72.0.1:40000 > 10.72.0.2:80",
                  "tcp A 10.72.0.2:80 > 10.71.0.2:40000",
                  "tcp PA 10.72.0.2:80 > 10.71.0.2:40000",
                  "tcp A 10.72.0.1:40000 > 10.72.0.2:80",
                  "tcp FA 10.72.0.1:40000 > 10.72.0.2:80",
                  "tcp FA 10.72.0.2:80 > 10.71.0.2:40000",
                  "tcp A 10.72.0.1:40000 > 10.72.0.2:80"),
    ),
    NatScenario(
        "masq_icmp_echo",
        MASQUERADE,
        (Send("a", A1, B1, Echo()), ReplyTo(1)),
        # The identifier plays the port: free, so kept.
        kernel=(Conn("icmp/1", None, icmp(A1, B1, 8, ICMP_ID), icmp(B1, WAN, 0, ICMP_ID), (),
                     "icmp_timeout"),),
        received=(f"icmp 8/0 10.72.0.1 > 10.72.0.2 id={ICMP_ID}",
                  f"icmp 0/0 10.72.0.2 > 10.71.0.2 id={ICMP_ID}"),
    ),
    NatScenario(
        "masq_udp_source_port_collision",
        MASQUERADE,
        # Two inside hosts, same source port, same server: the second cannot keep its port.
        (Send("a", A1, B1, Datagram(40000, 53)),
         Send("a", A2, B1, Datagram(40000, 53)),
         ReplyTo(1), ReplyTo(2)),
        kernel=(udp(ports(A1, B1, 40000, 53), ports(B1, WAN, 53, 40000)),
                udp(ports(A2, B1, 40000, 53), ports(B1, WAN, 53, REMAPPED))),
        received=("udp 10.72.0.1:40000 > 10.72.0.2:53",
                  f"udp 10.72.0.1:{REMAPPED} > 10.72.0.2:53",
                  "udp 10.72.0.2:53 > 10.71.0.2:40000",
                  "udp 10.72.0.2:53 > 10.71.0.3:40000"),
    ),
    NatScenario(
        "masq_icmp_id_collision",
        MASQUERADE,
        (Send("a", A1, B1, Echo()), Send("a", A2, B1, Echo()), ReplyTo(1), ReplyTo(2)),
        kernel=(Conn("icmp/1", None, icmp(A1, B1, 8, ICMP_ID), icmp(B1, WAN, 0, ICMP_ID), (),
                     "icmp_timeout"),
                Conn("icmp/1", None, icmp(A2, B1, 8, ICMP_ID), icmp(B1, WAN, 0, REMAPPED), (),
                     "icmp_timeout")),
        received=(f"icmp 8/0 10.72.0.1 > 10.72.0.2 id={ICMP_ID}",
                  f"icmp 8/0 10.72.0.1 > 10.72.0.2 id={REMAPPED}",
                  f"icmp 0/0 10.72.0.2 > 10.71.0.2 id={ICMP_ID}",
                  f"icmp 0/0 10.72.0.2 > 10.71.0.3 id={ICMP_ID}"),
    ),
    NatScenario(
        "masq_udp_port_unreachable_from_server",
        MASQUERADE,
        (Send("a", A1, B1, Datagram(40000, 53)), ErrorAbout(1)),
        # The error is RELATED: the inside host gets it addressed to itself, quoting its
        # own datagram as it sent it.  It is no reply: the entry stays UNREPLIED.
        kernel=(udp(ports(A1, B1, 40000, 53), ports(B1, WAN, 53, 40000), ("UNREPLIED",)),),
        received=("udp 10.72.0.1:40000 > 10.72.0.2:53",
                  "icmp 3/3 10.72.0.2 > 10.71.0.2 [udp 10.71.0.2:40000 > 10.72.0.2:53]"),
    ),
    NatScenario(
        "dnat_udp_wan_port",
        DNAT_UDP,
        (Send("b", B1, WAN, Datagram(40000, 5353)), ReplyTo(1)),
        kernel=(udp(ports(B1, WAN, 40000, 5353), ports(A1, B1, 53, 40000)),),
        received=("udp 10.72.0.2:40000 > 10.71.0.2:53",
                  "udp 10.72.0.1:5353 > 10.72.0.2:40000"),
    ),
    NatScenario(
        "dnat_tcp_wan_port",
        DNAT_TCP,
        (Send("b", B1, WAN, Segment(40000, 8080, "S", 1000)),
         ReplyTo(1, "SA", 5000, 1001),
         ReplyTo(2, "A", 1001, 5001),
         ReplyTo(2, "PA", 1001, 5001, payload=100),
         ReplyTo(4, "A", 5001, 1101)),
        kernel=(Conn("tcp/6", "ESTABLISHED", ports(B1, WAN, 40000, 8080), ports(A1, B1, 80, 40000),
                     ("ASSURED",), "tcp_timeout_established"),),
        received=("tcp S 10.72.0.2:40000 > 10.71.0.2:80",
                  "tcp SA 10.72.0.1:8080 > 10.72.0.2:40000",
                  "tcp A 10.72.0.2:40000 > 10.71.0.2:80",
                  "tcp PA 10.72.0.2:40000 > 10.71.0.2:80",
                  "tcp A 10.72.0.1:8080 > 10.72.0.2:40000"),
    ),
    NatScenario(
        "dnat_udp_port_unreachable_from_inside",
        DNAT_UDP,
        (Send("b", B1, WAN, Datagram(40000, 5353)), ErrorAbout(1)),
        # The inside host refuses: the outside one sees the error come from the WAN
        # address, quoting the datagram it sent to WAN:5353.
        kernel=(udp(ports(B1, WAN, 40000, 5353), ports(A1, B1, 53, 40000), ("UNREPLIED",)),),
        received=("udp 10.72.0.2:40000 > 10.71.0.2:53",
                  "icmp 3/3 10.72.0.1 > 10.72.0.2 [udp 10.72.0.2:40000 > 10.72.0.1:5353]"),
    ),
    NatScenario(
        "dnat_clash_resolved_by_null_binding",
        DNAT_UDP,
        # B1:40000 first reaches A1:53 through the DNAT, then directly.  The direct flow's
        # reply tuple is the DNATed one's: no rule maps it, so the null binding in
        # POSTROUTING moves its source port.
        (Send("b", B1, WAN, Datagram(40000, 5353)),
         Send("b", B1, A1, Datagram(40000, 53)),
         ReplyTo(1), ReplyTo(2)),
        kernel=(udp(ports(B1, WAN, 40000, 5353), ports(A1, B1, 53, 40000)),
                udp(ports(B1, A1, 40000, 53), ports(A1, B1, 53, REMAPPED))),
        received=("udp 10.72.0.2:40000 > 10.71.0.2:53",
                  f"udp 10.72.0.2:{REMAPPED} > 10.71.0.2:53",
                  "udp 10.72.0.1:5353 > 10.72.0.2:40000",
                  "udp 10.71.0.2:53 > 10.72.0.2:40000"),
    ),
    NatScenario(
        "snat_to_source_address",
        ("-A POSTROUTING -o b0 -j SNAT --to-source 10.72.0.9",),
        (Send("a", A1, B1, Datagram(40000, 53)), ReplyTo(1)),
        kernel=(udp(ports(A1, B1, 40000, 53), ports(B1, "10.72.0.9", 53, 40000)),),
        received=("udp 10.72.0.9:40000 > 10.72.0.2:53",
                  "udp 10.72.0.2:53 > 10.71.0.2:40000"),
    ),
    NatScenario(
        "snat_to_source_port_range",
        ("-A POSTROUTING -o b0 -p udp -j SNAT --to-source 10.72.0.9:2000-2099",),
        # 40000 is outside --to-ports: a port is chosen in 2000-2099.
        (Send("a", A1, B1, Datagram(40000, 53)), ReplyTo(1)),
        kernel=(udp(ports(A1, B1, 40000, 53), ports(B1, "10.72.0.9", 53, REMAPPED)),),
        received=(f"udp 10.72.0.9:{REMAPPED} > 10.72.0.2:53",
                  "udp 10.72.0.2:53 > 10.71.0.2:40000"),
        remap_range=(2000, 2099),
    ),
    NatScenario(
        "snat_address_range_persistent",
        ("-A POSTROUTING -o b0 -j SNAT --to-source 10.72.0.10-10.72.0.13 --persistent",),
        # The address is jhash2(source, seed 0) scaled into the range: A1 gets the same
        # one for both servers; the ports are free and kept.
        (Send("a", A1, B1, Datagram(40000, 53)),
         Send("a", A1, B2, Datagram(40001, 53)),
         Send("a", A2, B1, Datagram(40000, 53)),
         ReplyTo(1), ReplyTo(2), ReplyTo(3)),
        kernel=(udp(ports(A1, B1, 40000, 53), ports(B1, "10.72.0.12", 53, 40000)),
                udp(ports(A1, B2, 40001, 53), ports(B2, "10.72.0.12", 53, 40001)),
                udp(ports(A2, B1, 40000, 53), ports(B1, "10.72.0.11", 53, 40000))),
        received=("udp 10.72.0.12:40000 > 10.72.0.2:53",
                  "udp 10.72.0.12:40001 > 10.72.0.3:53",
                  "udp 10.72.0.11:40000 > 10.72.0.2:53",
                  "udp 10.72.0.2:53 > 10.71.0.2:40000",
                  "udp 10.72.0.3:53 > 10.71.0.2:40001",
                  "udp 10.72.0.2:53 > 10.71.0.3:40000"),
    ),
    NatScenario(
        "snat_address_range",
        ("-A POSTROUTING -o b0 -j SNAT --to-source 10.72.0.10-10.72.0.13",),
        # Without --persistent jhash2 is seeded with the destination: A1 gets one address
        # per server (A2 happens to get the same for both).
        (Send("a", A1, B1, Datagram(40000, 53)),
         Send("a", A1, B2, Datagram(40001, 53)),
         Send("a", A2, B1, Datagram(40000, 53)),
         Send("a", A2, B2, Datagram(40001, 53))),
        kernel=(udp(ports(A1, B1, 40000, 53), ports(B1, "10.72.0.13", 53, 40000), ("UNREPLIED",)),
                udp(ports(A1, B2, 40001, 53), ports(B2, "10.72.0.12", 53, 40001), ("UNREPLIED",)),
                udp(ports(A2, B1, 40000, 53), ports(B1, "10.72.0.10", 53, 40000), ("UNREPLIED",)),
                udp(ports(A2, B2, 40001, 53), ports(B2, "10.72.0.10", 53, 40001), ("UNREPLIED",))),
        received=("udp 10.72.0.13:40000 > 10.72.0.2:53",
                  "udp 10.72.0.12:40001 > 10.72.0.3:53",
                  "udp 10.72.0.10:40000 > 10.72.0.2:53",
                  "udp 10.72.0.10:40001 > 10.72.0.3:53"),
    ),
    NatScenario(
        "dnat_tcp_port_held_by_time_wait",
        DNAT_TCP,
        # B1:40000 talks to A1:80 directly and closes; in TIME_WAIT the entry still holds
        # the reply tuple a DNAT to A1:80 from B1:40000 needs.  The new SYN's sequence has
        # advanced, yet Linux does not evict the old entry for a DNATed connection: the
        # null binding moves the new one's source port.
        (Send("b", B1, A1, Segment(40000, 80, "S", 1000)),
         ReplyTo(1, "SA", 5000, 1001),
         ReplyTo(2, "A", 1001, 5001),
         ReplyTo(2, "FA", 1001, 5001),
         ReplyTo(4, "FA", 5001, 1002),
         ReplyTo(5, "A", 1002, 5002),
         Send("b", B1, WAN, Segment(40000, 8080, "S", 900000)),
         ReplyTo(7, "SA", 9000, 900001)),
        kernel=(Conn("tcp/6", "TIME_WAIT", ports(B1, A1, 40000, 80), ports(A1, B1, 80, 40000),
                     ("ASSURED",), "tcp_timeout_time_wait"),
                Conn("tcp/6", "SYN_RECV", ports(B1, WAN, 40000, 8080), ports(A1, B1, 80, REMAPPED),
                     (), "tcp_timeout_syn_recv")),
        received=("tcp S 10.72.0.2:40000 > 10.71.0.2:80",
                  "tcp SA 10.71.0.2:80 > 10.72.0.2:40000",
                  "tcp A 10.72.0.2:40000 > 10.71.0.2:80",
                  "tcp FA 10.72.0.2:40000 > 10.71.0.2:80",
                  "tcp FA 10.71.0.2:80 > 10.72.0.2:40000",
                  "tcp A 10.72.0.2:40000 > 10.71.0.2:80",
                  f"tcp S 10.72.0.2:{REMAPPED} > 10.71.0.2:80",
                  "tcp SA 10.72.0.1:8080 > 10.72.0.2:40000"),
    ),
    NatScenario(
        "redirect_udp_to_closed_router_port",
        ("-A PREROUTING -i a0 -p udp -m udp --dport 53 -j REDIRECT --to-ports 5353",),
        # Redirected to a0's address, port 5353, where nothing listens: the router's own
        # port unreachable, translated back, seems to come from the server A1 asked.
        (Send("a", A1, B1, Datagram(40000, 53), answered=True),),
        kernel=(udp(ports(A1, B1, 40000, 53), ports(LAN_GW, A1, 5353, 40000), ("UNREPLIED",)),),
        received=("icmp 3/3 10.72.0.2 > 10.71.0.2 [udp 10.71.0.2:40000 > 10.72.0.2:53]",),
    ),
    NatScenario(
        "redirect_tcp_to_closed_router_port",
        ("-A PREROUTING -i a0 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8080",),
        # The router's own reset (DF set, as tcp_v4_send_reset sends it), translated back.
        # A reset before any reply deletes the entry at once.
        (Send("a", A1, B1, Segment(40000, 80, "S", 1000), answered=True),),
        kernel=(),
        received=("tcp RA 10.72.0.2:80 > 10.71.0.2:40000",),
    ),
)
