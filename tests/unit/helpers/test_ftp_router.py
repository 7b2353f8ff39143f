"""FTP through the router: the helper attached by CT --helper, PORT/PASV read, NAT rewrite,
sequence adjustment, the data connection RELATED and translated."""
import pytest
from packets import H1, LAN_TUN, R_WAN, SRV, WAN, make_router, parse_out, tcp4
from scapy.all import TCP, Raw

from tunrouter.conntrack.format import expect_line, list_line
from tunrouter.core.hooks import engine_for
from tunrouter.core.verdict import Drop

RAW = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" \
      "-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp\nCOMMIT\n"
MASQ = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" \
       ":POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o wan0 -j MASQUERADE\nCOMMIT\n"
STATEFUL = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" \
           "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n" \
           "-A FORWARD -i lan0 -p tcp --dport 21 -j ACCEPT\nCOMMIT\n"
C_ISN, S_ISN = 1000, 5000


class Session:
    """A client on lan0 (H1:40000) talking FTP to SRV:21; sequence numbers kept."""

    def __init__(self, rules: str, t: float = 0.0):
        self.r = make_router()
        self.r.set_rules(engine_for(rules))
        self.t = t
        self.cseq, self.sseq = C_ISN + 1, S_ISN + 1
        self.wan_addr = R_WAN if "MASQUERADE" in rules else H1
        assert self.send_c("S", seq=C_ISN, ack=0)
        assert self.send_s("SA", seq=S_ISN, ack=C_ISN + 1)
        assert self.send_c("A")

    def tick(self) -> float:
        self.t += 0.01
        return self.t

    def send_c(self, flags="PA", data=b"", seq=None, ack=None):
        out = self.r.process(LAN_TUN, tcp4(H1, SRV, 40000, 21, flags, data,
                                           seq=self.cseq if seq is None else seq,
                                           ack=self.sseq if ack is None else ack), self.tick())
        self.cseq += len(data)
        return [parse_out(f) for _, f in out]

    def send_s(self, flags="PA", data=b"", seq=None, ack=None):
        out = self.r.process(WAN, tcp4(SRV, self.wan_addr, 21, 40000, flags, data,
                                       seq=self.sseq if seq is None else seq,
                                       ack=self.cseq if ack is None else ack), self.tick())
        self.sseq += len(data)
        return [parse_out(f) for _, f in out]


def test_active_ftp_through_masquerade_rewrites_port_and_opens_the_data_connection():
    s = Session(RAW + MASQ + STATEFUL)
    s.send_s(data=b"220 hello\r\n")
    s.send_c(data=b"USER a\r\n")
    s.send_s(data=b"331 pass\r\n")
    out, = s.send_c(data=b"PORT 10,1,0,2,195,80\r\n")
    assert bytes(out[Raw].load) == b"PORT 203,0,113,1,195,80\r\n"
    del out[TCP].chksum
    assert out.__class__(bytes(out))[TCP].chksum == parse_out(bytes(out))[TCP].chksum
    line, = [expect_line(e, s.t) for e in s.r.conntrack.expects.all(s.t)]
    assert line.startswith("300 proto=6 src=203.0.113.80 dst=203.0.113.1 sport=0 dport=50000 ")
    assert line.endswith("master-src=10.1.0.2 master-dst=203.0.113.80 sport=40000 dport=21 class=0 helper=ftp")
    # the server acknowledges the 3 extra bytes; the client sees its own numbering
    ack, = s.send_s("A", ack=s.cseq + 3)
    assert ack[TCP].ack == s.cseq
    # the next client segment is moved by +3 for the server
    nxt, = s.send_c(data=b"LIST\r\n")
    assert nxt[TCP].seq == s.cseq - len(b"LIST\r\n") + 3
    # the server's data connection from port 20: RELATED, to the client's announced port
    out = s.r.process(WAN, tcp4(SRV, R_WAN, 20, 50000, "S", seq=9000), s.tick())
    data_syn = parse_out(out[0][1])
    assert (data_syn.src, data_syn.dst, data_syn[TCP].sport, data_syn[TCP].dport) == \
           (SRV, H1, 20, 50000)
    lines = [list_line(c, s.t) for c in s.r.conntrack.conns(s.t)]
    assert any("helper=ftp" in x and "dport=21" in x for x in lines)
    assert s.r.conntrack.expects.count == 0         # used once


def test_without_the_helper_the_data_connection_is_refused():
    s = Session(MASQ + STATEFUL)
    s.send_s(data=b"220 hello\r\n")
    s.send_c(data=b"USER a\r\n")
    out, = s.send_c(data=b"PORT 10,1,0,2,195,80\r\n")
    assert bytes(out[Raw].load) == b"PORT 10,1,0,2,195,80\r\n"       # untouched
    # nothing expected: a SYN to the router's own closed port, answered with a reset
    (port, frame), = s.r.process(WAN, tcp4(SRV, R_WAN, 20, 50000, "S", seq=9000), s.tick())
    assert port == WAN and str(parse_out(frame)[TCP].flags) == "RA"


def test_passive_ftp_227_expects_the_client():
    s = Session(RAW + MASQ + STATEFUL)
    s.send_s(data=b"220 hello\r\n")
    s.send_c(data=b"PASV\r\n")
    s.send_s(data=b"227 Entering Passive Mode (203,0,113,80,19,137).\r\n")
    exp, = s.r.conntrack.expects.all(s.t)
    assert (exp.src, exp.dst, exp.dport) == (bytes([10, 1, 0, 2]), bytes([203, 0, 113, 80]), 5001)
    out = s.r.process(LAN_TUN, tcp4(H1, SRV, 41000, 5001, "S", seq=7000), s.tick())
    syn = parse_out(out[0][1])
    assert (syn.src, syn.dst, syn[TCP].dport) == (R_WAN, SRV, 5001)


@pytest.mark.parametrize("line,why", [
    (b"PORT 10,1,0,2,195,80\n", "partial"),           # no \r
    (b"PORT  10,1,0,2,195,80\r\n", "partial"),        # two spaces
    (b"POR", "partial"),                                # a prefix of the command
])
def test_malformed_port_is_dropped(line, why):
    s = Session(RAW + MASQ + STATEFUL)
    s.send_s(data=b"220 hello\r\n")
    s.send_c(data=b"USER a\r\n")
    assert s.send_c(data=line) == []
    assert s.r.counters.drops[Drop.HELPER] == 1
    assert any("partial matching" in n for n in s.r.notices)


def test_port_with_a_third_party_address_opens_nothing():
    s = Session(RAW + MASQ + STATEFUL)
    s.send_s(data=b"220 hello\r\n")
    s.send_c(data=b"USER a\r\n")
    out, = s.send_c(data=b"PORT 192,0,2,7,195,80\r\n")
    assert bytes(out[Raw].load) == b"PORT 192,0,2,7,195,80\r\n"
    assert s.r.conntrack.expects.count == 0
    assert any("NOT RECORDING" in n for n in s.r.notices)


def test_port_in_the_first_segment_or_mid_segment_is_not_read():
    s = Session(RAW + MASQ + STATEFUL)
    s.send_c(data=b"PORT 10,1,0,2,195,80\r\n")           # nothing remembered yet
    assert s.r.conntrack.expects.count == 0
    s.send_c(data=b"NOOP\r\nPORT 10,1,0,2,195,81\r\n")    # not at the segment's start
    assert s.r.conntrack.expects.count == 0


def test_more_port_commands_than_max_expected_keep_only_the_newest():
    """The FTP policy's max_expected=1: each PORT evicts the previous expectation."""
    s = Session(RAW + MASQ + STATEFUL)
    s.send_s(data=b"220 hello\r\n")
    s.send_c(data=b"USER a\r\n")
    s.send_s(data=b"331 pass\r\n")
    ports = (50000, 50001, 50002)
    for p in ports:
        out, = s.send_c(data=b"PORT 10,1,0,2,%d,%d\r\n" % (p >> 8, p & 0xFF))
        assert bytes(out[Raw].load) == b"PORT 203,0,113,1,%d,%d\r\n" % (p >> 8, p & 0xFF)
        s.send_s(data=b"200 ok\r\n")
    exp, = s.r.conntrack.expects.all(s.t)
    assert exp.dport == ports[-1] and exp.dst == bytes([203, 0, 113, 1])
    line, = [expect_line(e, s.t) for e in s.r.conntrack.expects.all(s.t)]
    assert " dport=50002 " in line
    # an earlier announced port: nothing expected, the router's closed port resets
    for p in ports[:-1]:
        (port, frame), = s.r.process(WAN, tcp4(SRV, R_WAN, 20, p, "S", seq=9000), s.tick())
        assert port == WAN and str(parse_out(frame)[TCP].flags) == "RA"
    # the newest gets through to the client
    out = s.r.process(WAN, tcp4(SRV, R_WAN, 20, ports[-1], "S", seq=9100), s.tick())
    syn = parse_out(out[0][1])
    assert (syn.src, syn.dst, syn[TCP].sport, syn[TCP].dport) == (SRV, H1, 20, ports[-1])
    assert s.r.conntrack.expects.count == 0


def test_pasv_from_a_server_behind_dnat_is_rewritten_to_the_public_address():
    """A server on the LAN published by DNAT: its 227 names its own address, which the
    client outside reads as the router's; the client's data connection reaches it."""
    dnat = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" \
           ":POSTROUTING ACCEPT [0:0]\n" \
           "-A PREROUTING -i wan0 -p tcp --dport 21 -j DNAT --to-destination 10.1.0.2:21\nCOMMIT\n"
    flt = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" \
          "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n" \
          "-A FORWARD -i wan0 -p tcp --dport 21 -m conntrack --ctstate DNAT -j ACCEPT\nCOMMIT\n"
    r = make_router()
    r.set_rules(engine_for(RAW + dnat + flt))
    t = [0.0]

    def tick():
        t[0] += 0.01
        return t[0]
    cseq, sseq = C_ISN + 1, S_ISN + 1

    def client(flags, data=b"", seq=None, ack=None):
        nonlocal cseq
        out = r.process(WAN, tcp4(SRV, R_WAN, 40000, 21, flags, data, seq=cseq if seq is None else seq,
                                  ack=sseq if ack is None else ack), tick())
        cseq += len(data)
        return [parse_out(f) for _, f in out]

    def server(flags, data=b"", seq=None, ack=None):
        nonlocal sseq
        out = r.process(LAN_TUN, tcp4(H1, SRV, 21, 40000, flags, data, seq=sseq if seq is None else seq,
                                      ack=cseq if ack is None else ack), tick())
        sseq += len(data)
        return [parse_out(f) for _, f in out]
    syn, = client("S", seq=C_ISN, ack=0)
    assert (syn.dst, syn[TCP].dport) == (H1, 21)
    synack, = server("SA", seq=S_ISN, ack=C_ISN + 1)
    assert synack.src == R_WAN
    client("A")
    server("PA", b"220 hello\r\n")
    client("PA", b"PASV\r\n")
    out, = server("PA", b"227 Entering Passive Mode (10,1,0,2,19,137).\r\n")
    assert bytes(out[Raw].load) == b"227 Entering Passive Mode (203,0,113,1,19,137).\r\n"
    assert out.src == R_WAN
    exp, = r.conntrack.expects.all(t[0])
    assert (exp.src, exp.dst, exp.dport) == (bytes([203, 0, 113, 80]), bytes([203, 0, 113, 1]), 5001)
    out = r.process(WAN, tcp4(SRV, R_WAN, 41000, 5001, "S", seq=7000), tick())
    data_syn = parse_out(out[0][1])
    assert (data_syn.src, data_syn.dst, data_syn[TCP].dport) == (SRV, H1, 5001)
