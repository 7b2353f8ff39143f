"""The LOG target's line, token for token as nf_log_syslog.c prints it, and its JSON twin."""
import json

from rules_ctx import ETH_HEADER, ctx, engine
from scapy.all import ICMP, IP, TCP, UDP, IPOption_RR, Raw

from tunrouter.rules import FILTER, Hook

SYN = IP(src="10.1.0.2", dst="10.2.0.2", flags="DF") / TCP(
    sport=40000, dport=22, flags="S", seq=1000, window=64240)


def log_line(rule_opts: str, pkt, chain: str = "INPUT", **kw):
    e = engine(f"-A {chain} -j LOG {rule_opts}".rstrip())
    e.run(FILTER, Hook[chain], ctx(pkt, **kw))
    (record,) = e.logs
    return record


def test_tcp_syn_on_a_tun_port():
    assert log_line("", SYN).text() == (
        "IN=lan0 OUT= MAC= SRC=10.1.0.2 DST=10.2.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF "
        "PROTO=TCP SPT=40000 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 ")


def test_prefix_forward_and_tap_mac_header():
    rec = log_line('--log-prefix "FWD: "', SYN, "FORWARD", out_name="wan0",
                   mac_header=ETH_HEADER)
    assert rec.text() == (
        "FWD: IN=lan0 OUT=wan0 MAC=02:00:00:00:00:01:02:00:00:00:00:22:08:00 SRC=10.1.0.2 "
        "DST=10.2.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=40000 DPT=22 "
        "WINDOW=64240 RES=0x00 SYN URGP=0 ")


def test_macdecode():
    rec = log_line("--log-macdecode", SYN, mac_header=ETH_HEADER)
    assert "MACSRC=02:00:00:00:00:22 MACDST=02:00:00:00:00:01 MACPROTO=0800 SRC=" in rec.text()


def test_output_has_no_mac_field():
    assert log_line("", SYN, "OUTPUT", in_name="", out_name="wan0").text().startswith(
        "IN= OUT=wan0 SRC=10.1.0.2 ")


def test_tcp_sequence_options_and_all_flags():
    pkt = IP(src="10.1.0.2", dst="10.2.0.2", tos=0xB8) / TCP(
        sport=1, dport=2, flags="FSRPAUEC", seq=7, ack=9, window=5, urgptr=3,
        options=[("MSS", 1460), ("NOP", None), ("WScale", 7)])
    assert log_line("--log-tcp-sequence --log-tcp-options", pkt).text() == (
        "IN=lan0 OUT= MAC= SRC=10.1.0.2 DST=10.2.0.2 LEN=48 TOS=0x18 PREC=0xA0 TTL=64 ID=1 "
        "PROTO=TCP SPT=1 DPT=2 SEQ=7 ACK=9 WINDOW=5 RES=0x00 CWR ECE URG ACK PSH RST SYN FIN "
        "URGP=3 OPT (020405B401030307) ")


def test_ip_options():
    pkt = IP(src="10.1.0.2", dst="10.2.0.2", options=[IPOption_RR(routers=["0.0.0.0"])]) / UDP(
        sport=1, dport=2)
    text = log_line("--log-ip-options", pkt).text()
    assert "ID=1 OPT (07070400000000" in text and " PROTO=UDP SPT=1 DPT=2 LEN=8 " in text


def test_udp():
    pkt = IP(src="10.1.0.2", dst="10.2.0.2", id=4242, ttl=63) / UDP(sport=5353, dport=53) / "q"
    assert log_line("", pkt).text() == (
        "IN=lan0 OUT= MAC= SRC=10.1.0.2 DST=10.2.0.2 LEN=29 TOS=0x00 PREC=0x00 TTL=63 ID=4242 "
        "PROTO=UDP SPT=5353 DPT=53 LEN=9 ")


def test_icmp_echo():
    pkt = IP(src="10.1.0.2", dst="10.2.0.2") / ICMP(type=8, id=7, seq=1) / Raw(b"ping")
    assert log_line("", pkt).text().endswith(
        "LEN=32 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1 ")


def test_icmp_error_quotes_the_packet_once():
    inner = IP(src="10.2.0.2", dst="10.1.0.2", id=5) / UDP(sport=53, dport=5353) / Raw(b"q")
    pkt = IP(src="10.2.0.1", dst="10.1.0.2") / ICMP(type=3, code=3) / inner
    assert log_line("", pkt).text().endswith(
        "PROTO=ICMP TYPE=3 CODE=3 [SRC=10.2.0.2 DST=10.1.0.2 LEN=29 TOS=0x00 PREC=0x00 TTL=64 "
        "ID=5 PROTO=UDP SPT=53 DPT=5353 LEN=9 ] ")


def test_icmp_frag_needed_quotes_a_cut_tcp_header_and_the_mtu():
    inner = bytes(IP(src="10.1.0.2", dst="10.2.0.2", flags="DF", id=9) / TCP(sport=1, dport=2))
    pkt = IP(src="10.0.0.1", dst="10.1.0.2") / ICMP(type=3, code=4, nexthopmtu=1400) / Raw(
        inner[:28])
    assert log_line("", pkt).text().endswith(
        "PROTO=ICMP TYPE=3 CODE=4 [SRC=10.1.0.2 DST=10.2.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 "
        "ID=9 DF PROTO=TCP INCOMPLETE [8 bytes] ] MTU=1400 ")


def test_fragments_print_only_the_protocol():
    pkt = IP(src="10.1.0.2", dst="10.2.0.2", frag=185, proto=6) / Raw(b"x" * 20)
    assert log_line("", pkt).text().endswith("ID=1 FRAG:185 PROTO=TCP ")


def test_json_carries_the_same_fields():
    rec = log_line('--log-prefix "in: " --log-level 6', SYN)
    data = json.loads(rec.json())
    assert data["prefix"] == "in: " and data["level"] == 6 and data["hook"] == "INPUT"
    assert (data["src"], data["dpt"], data["tcp_flags"], data["ip_flags"]) == (
        "10.1.0.2", 22, ["SYN"], ["DF"])
