"""Operating a running lab router: trace."""
import subprocess
import sys
import time

import pytest
from conftest import need

pytestmark = pytest.mark.netns


def _trace(lab, *filt: str, count: int = 1) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-m", "tunrouter", "trace", "--lab", lab.name,
                          "-c", str(count), *filt], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(0.7)                    # subscribed before the traffic starts
    return p


def test_trace_names_the_rule_that_dropped_a_packet(home):
    p = _trace(home, "icmp", "and", "dst", "host", "10.2.0.2")
    home.run("web", "ping", "-c", "1", "-W", "1", "10.2.0.2", check=False)
    out, err = p.communicate(timeout=10)
    lines = out.splitlines()
    assert lines[0].startswith("trace 1 in wan0: IP / ICMP 203.0.113.80 > 10.2.0.2 echo-request"), out
    assert "  conntrack NEW" in lines
    assert '  filter FORWARD rule 4: -A FORWARD -j LOG --log-prefix "home-drop: "' in lines
    assert lines[-2:] == ["  filter FORWARD: policy DROP", "  verdict: dropped (rule)"], out


def test_trace_shows_the_nat_applied_with_an_iptables_style_filter(home):
    need("curl")
    home.wait_listen("h1", 80)
    p = _trace(home, "--", "-p", "tcp", "--dport", "8080")
    home.run("web", "curl", "-sS", "--max-time", "5", "http://203.0.113.1:8080/")
    out, _ = p.communicate(timeout=10)
    assert "nat PREROUTING rule 1: -A PREROUTING -i wan0 -p tcp -m tcp --dport 8080 " \
           "-j DNAT --to-destination 10.1.0.2:80" in out
    assert "NAT: destination 203.0.113.1:8080 -> 10.1.0.2:80" in out
    assert out.rstrip().endswith("verdict: forwarded")


def test_a_bad_trace_filter_is_refused_with_the_reason(home):
    p = subprocess.run([sys.executable, "-m", "tunrouter", "trace", "--lab", home.name, "hots", "x"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode != 0 and "unknown filter word 'hots'" in p.stderr


def test_capture_writes_a_pcap_tshark_reads_with_the_translated_packets(home, tmp_path):
    need("tshark")
    pcap = tmp_path / "wan0.pcap"
    p = subprocess.Popen([sys.executable, "-m", "tunrouter", "capture", "--lab", home.name,
                          "-c", "4", "-w", str(pcap), "wan0", "icmp"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.7)
    home.run("h1", "ping", "-c", "2", "-i", "0.2", "-W", "1", "203.0.113.80")
    _, err = p.communicate(timeout=10)
    assert "4 frames captured on wan0 (both)." in err
    fields = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "ip.src", "-e", "ip.dst",
                             "-e", "icmp.type"], capture_output=True, text=True, timeout=30).stdout
    # out: masqueraded requests as they left; in: the replies before the router translated them
    assert fields.split("\n")[:4] == ["203.0.113.1\t203.0.113.80\t8", "203.0.113.80\t203.0.113.1\t0"] * 2


def test_capture_text_says_in_and_out(home):
    p = subprocess.Popen([sys.executable, "-m", "tunrouter", "capture", "--lab", home.name,
                          "-c", "2", "-d", "out", "lan1", "icmp"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.7)
    home.run("h2", "ping", "-c", "2", "-i", "0.2", "-W", "1", "203.0.113.80")
    out, _ = p.communicate(timeout=10)
    lines = out.splitlines()
    assert len(lines) == 2 and all(" out IP / ICMP 203.0.113.80 > 10.2.0.2 echo-reply" in x
                                   for x in lines), out


def test_top_ranks_the_busiest_connection_first(home):
    need("curl")
    tunrouter_cli = [sys.executable, "-m", "tunrouter"]
    subprocess.run([*tunrouter_cli, "sysctl", "--lab", home.name, "nf_conntrack_acct=1"],
                   check=True, capture_output=True, timeout=10)
    home.wait_listen("web", 80)
    home.run("h1", "ping", "-c", "2", "-i", "0.2", "-W", "1", "203.0.113.80")
    home.run("h2", "curl", "-sS", "--max-time", "20", "-o", "/dev/null", "http://203.0.113.80/blob.bin")
    out = subprocess.run([*tunrouter_cli, "top", "--lab", home.name, "--once", "-i", "0.2"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    rows = [x for x in out.splitlines() if x.startswith(("tcp", "icmp"))]
    assert rows[0].startswith("tcp") and "src=10.2.0.2 dst=203.0.113.80" in rows[0]
    assert int(rows[0].split()[4]) > 1_000_000                     # the 1 MiB download, both ways
    assert any(x.startswith("icmp") for x in rows[1:])
    assert "wan0" in out and "lan1" in out
