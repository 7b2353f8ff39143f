"""The text of `conntrack -L`, `-E` and `-S`, compared with literal output.

The expected lines are copied from conntrack-tools 1.4.7 on the reference
machine (Linux 6.18), run in the router namespace of a veth lab while the
same traffic passed, and from CONNTRACK-REFERENCE.md §8.
"""
from scapy.layers.inet import IP
from scapy.packet import Raw

from ct_packets import C, S, Router, Tcp, desc, icmp_pkt, udp_pkt
from tunrouter.conntrack.conn import IPS_ASSURED, IPS_CONFIRMED, IPS_SEEN_REPLY, Conn
from tunrouter.conntrack.format import event_line, list_line, stats_line
from tunrouter.conntrack.proto.tcp import TcpConn, TcpState
from tunrouter.conntrack.table import ConnTable
from tunrouter.wire.ipv4 import ntoa


def addr(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def test_list_line_reference_example():
    """CONNTRACK-REFERENCE.md §8, "Typical conntrack -L line"."""
    a, b = addr("10.0.0.1"), addr("10.0.0.2")
    ct = TcpConn((a, b, 6, 33000, 80), (b, a, 6, 80, 33000))
    ct.state = TcpState.ESTABLISHED
    ct.status = IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED
    ct.deadline = 100 + 431999.7
    assert list_line(ct, 100) == (
        "tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=33000 dport=80 "
        "src=10.0.0.2 dst=10.0.0.1 sport=80 dport=33000 [ASSURED] mark=0 use=1")


def test_list_line_expired_prints_zero():
    ct = Conn((addr(C), addr(S), 253, 0, 0), (addr(S), addr(C), 253, 0, 0))
    ct.deadline = 10.0
    assert list_line(ct, 11.0).split()[2] == "0"


def test_list_lines_per_protocol():
    """One line of each kind, as `conntrack -L` printed them on the reference machine."""
    r = Router()
    r.send(udp_pkt("C", sport=40003, dport=7777))
    r.send(icmp_pkt("C", 8, ident=13885))
    r.send(icmp_pkt("S", 0, ident=13885))
    for proto in (47, 50, 33):
        r.send(IP(src=C, dst=S, proto=proto) / Raw(bytes(16)))
    r.now += 28.5
    assert r.listing() == [
        "udp      17 1 src=10.0.1.2 dst=10.0.2.2 sport=40003 dport=7777 [UNREPLIED] "
        "src=10.0.2.2 dst=10.0.1.2 sport=7777 dport=40003 mark=0 use=1",
        "icmp     1 1 src=10.0.1.2 dst=10.0.2.2 type=8 code=0 id=13885 "
        "src=10.0.2.2 dst=10.0.1.2 type=0 code=0 id=13885 mark=0 use=1",
        # the GRE tracker's 30 s, as the kernel printed it
        "gre      47 1 src=10.0.1.2 dst=10.0.2.2 srckey=0x0 dstkey=0x0 [UNREPLIED] "
        "src=10.0.2.2 dst=10.0.1.2 srckey=0x0 dstkey=0x0 mark=0 use=1",
        "unknown  50 571 src=10.0.1.2 dst=10.0.2.2 [UNREPLIED] src=10.0.2.2 dst=10.0.1.2 mark=0 use=1",
        "dccp     33 571 src=10.0.1.2 dst=10.0.2.2 sport=0 dport=0 [UNREPLIED] "
        "src=10.0.2.2 dst=10.0.1.2 sport=0 dport=0 mark=0 use=1",
    ]


def test_event_lines_tcp_session_and_expiry():
    """`conntrack -E` for a client connecting to 10.0.2.2:8080, exchanging a line each way
    and closing, TIME_WAIT set to 2 s: the kernel's output, line for line."""
    r = Router(nf_conntrack_tcp_timeout_time_wait=2)
    tcp = Tcp(r, ports=(40000, 8080))
    tcp.client("S")
    tcp.server("SA")
    tcp.client("A")
    tcp.client("PA", b"ping")
    tcp.server("A")
    tcp.server("PA", b"pong")
    tcp.client("A")
    tcp.server("FA", after=0.3)
    tcp.client("FA")
    tcp.server("A")
    r.table.expire(r.now + 3)                        # reaped in the second after its deadline
    tuples = ("src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=8080 "
              "src=10.0.2.2 dst=10.0.1.2 sport=8080 dport=40000")
    assert [event_line(e) for e in r.table.drain_events()] == [
        "    [NEW] tcp      6 120 SYN_SENT src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=8080 "
        "[UNREPLIED] src=10.0.2.2 dst=10.0.1.2 sport=8080 dport=40000",
        f" [UPDATE] tcp      6 60 SYN_RECV {tuples}",
        f" [UPDATE] tcp      6 432000 ESTABLISHED {tuples} [ASSURED]",
        f" [UPDATE] tcp      6 120 FIN_WAIT {tuples} [ASSURED]",
        f" [UPDATE] tcp      6 30 LAST_ACK {tuples} [ASSURED]",
        f" [UPDATE] tcp      6 2 TIME_WAIT {tuples} [ASSURED]",
        f"[DESTROY] tcp      6 TIME_WAIT {tuples} [ASSURED]",
    ]


def test_event_lines_udp_stream_and_flush():
    r = Router()
    r.send(udp_pkt("C", dport=5353))
    r.send(udp_pkt("S", dport=5353))
    r.send(udp_pkt("C", dport=5353), after=1.1)
    r.send(udp_pkt("S", dport=5353))
    r.send(udp_pkt("C", dport=5353), after=1.1)
    r.table.flush(r.now + 0.9, portid=14407)
    tuples = ("src=10.0.1.2 dst=10.0.2.2 sport=40001 dport=5353 "
              "src=10.0.2.2 dst=10.0.1.2 sport=5353 dport=40001")
    assert [event_line(e) for e in r.table.drain_events()] == [
        "    [NEW] udp      17 30 src=10.0.1.2 dst=10.0.2.2 sport=40001 dport=5353 [UNREPLIED] "
        "src=10.0.2.2 dst=10.0.1.2 sport=5353 dport=40001",
        f" [UPDATE] udp      17 30 {tuples}",
        f" [UPDATE] udp      17 120 {tuples} [ASSURED]",
        f"[DESTROY] udp      17 119 {tuples} [ASSURED] [USERSPACE] portid=14407",
    ]


def test_event_lines_udp_expiry():
    r = Router()
    r.send(udp_pkt("C", sport=40003, dport=7777))
    r.table.expire(r.now + 30)
    assert event_line(r.table.drain_events()[-1]) == (
        "[DESTROY] udp      17 src=10.0.1.2 dst=10.0.2.2 sport=40003 dport=7777 [UNREPLIED] "
        "src=10.0.2.2 dst=10.0.1.2 sport=7777 dport=40003")


def test_event_lines_syn_answered_by_rst():
    r = Router()
    tcp = Tcp(r, ports=(40002, 9))
    tcp.client("S")
    tcp.server("RA", seq=0)
    assert [event_line(e) for e in r.table.drain_events()] == [
        "    [NEW] tcp      6 120 SYN_SENT src=10.0.1.2 dst=10.0.2.2 sport=40002 dport=9 [UNREPLIED] "
        "src=10.0.2.2 dst=10.0.1.2 sport=9 dport=40002",
        "[DESTROY] tcp      6 120 CLOSE src=10.0.1.2 dst=10.0.2.2 sport=40002 dport=9 [UNREPLIED] "
        "src=10.0.2.2 dst=10.0.1.2 sport=9 dport=40002",
    ]


def test_event_lines_mark():
    """A non-zero mark shows in events (and mark=0 does not); -L always shows it."""
    t = ConnTable()
    ct, _ = t.track(desc(icmp_pkt("C", 8, ident=17311)), 50.0)
    ct.mark = 5
    t.confirm(ct, 50.0)
    t.track(desc(icmp_pkt("S", 0, ident=17311)), 50.0)
    t.delete(None, 50.6, portid=3848033249)
    echo = ("src=10.0.1.2 dst=10.0.2.2 type=8 code=0 id=17311 "
            "src=10.0.2.2 dst=10.0.1.2 type=0 code=0 id=17311")
    assert [event_line(e) for e in t.drain_events()] == [
        "    [NEW] icmp     1 30 src=10.0.1.2 dst=10.0.2.2 type=8 code=0 id=17311 [UNREPLIED] "
        "src=10.0.2.2 dst=10.0.1.2 type=0 code=0 id=17311 mark=5",
        f" [UPDATE] icmp     1 30 {echo} mark=5",
        f"[DESTROY] icmp     1 29 {echo} mark=5 [USERSPACE] portid=3848033249",
    ]
    assert list_line(ct, 50.6) == f"icmp     1 29 {echo} mark=5 use=1"


def test_stats_line():
    """`conntrack -S` on the reference machine, byte for byte (tab, trailing blank)."""
    assert stats_line(ConnTable().stats) == (
        "cpu=0   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 "
        "search_restart=0 clash_resolve=0 chaintoolong=0 ")


def test_stats_line_counts():
    r = Router()
    r.send(udp_pkt("C"))
    r.send(udp_pkt("C", len=3))
    assert stats_line(r.table.stats, cpu=1).startswith("cpu=1   \tfound=0 invalid=1 insert=1 ")


def test_tuple_addresses_print_dotted():
    assert ntoa(addr("192.168.1.254")) == "192.168.1.254"
