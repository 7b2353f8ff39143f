"""Operating a running lab router: trace, capture, top, reload, metrics."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import LABS, lab_from, need

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


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunrouter", *args], capture_output=True,
                          text=True, timeout=20, check=check)


def test_reload_with_a_broken_file_keeps_the_ruleset_and_names_the_line(home):
    rules = home.path.parent / "home.rules"
    good = rules.read_text()
    rules.write_text(good.replace('-A FORWARD -j LOG --log-prefix "home-drop: "',
                                  "-A FORWARD -p tcpp -j DROP"))
    p = _cli("reload", "--lab", home.name, check=False)
    assert p.returncode == 1
    assert 'home.rules: line 21: unknown protocol "tcpp"' in p.stderr and "nothing was changed" in p.stderr
    assert "home-drop" in _cli("iptables-save", "--lab", home.name).stdout     # the old one runs
    rules.write_text(good.replace('-A FORWARD -j LOG --log-prefix "home-drop: "',
                                  "-A FORWARD -p icmp -j REJECT"))
    home.run("h1", "ping", "-c", "1", "-W", "1", "203.0.113.80")              # a connection to keep
    assert _cli("reload", "--lab", home.name).stdout.startswith("reloaded ")
    saved = _cli("iptables-save", "--lab", home.name).stdout
    assert "-A FORWARD -p icmp -j REJECT --reject-with icmp-port-unreachable" in saved
    assert "icmp" in _cli("conntrack", "--lab", home.name, "-L").stdout        # conntrack kept
    # SIGHUP does the same
    rules.write_text(good)
    pid = json.loads(_cli("lab", "status", home.name, "--json").stdout)[0]["routers"]["r1"]["pid"]
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "home-drop" not in _cli("iptables-save", "--lab", home.name).stdout:
        assert time.monotonic() < deadline, "SIGHUP did not reload"
        time.sleep(0.1)


def test_metrics_endpoint_moves_with_traffic(tmp_path):
    port = 19100 + os.getpid() % 800
    edit = lambda t: t.replace('rules = "home.rules"\n',                       # noqa: E731
                               f'rules = "home.rules"\n[routers.r1.metrics]\nlisten = "127.0.0.1:{port}"\n')
    with lab_from(LABS / "home.toml", tmp_path, edit=edit) as lab:
        def scrape() -> dict[str, float]:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines() if line.startswith("tunrouter_")}
        before = scrape()
        lab.run("h1", "ping", "-c", "3", "-i", "0.2", "-W", "1", "203.0.113.80")
        lab.run("web", "ping", "-c", "1", "-W", "1", "10.2.0.2", check=False)   # dropped by policy
        after = scrape()
        assert after["tunrouter_forwarded_total"] >= before["tunrouter_forwarded_total"] + 6
        key = 'tunrouter_packets_total{direction="rx",port="lan0"}'
        assert after[key] >= before[key] + 3
        assert after['tunrouter_drops_total{reason="rule"}'] >= 1
        assert after["tunrouter_conntrack_entries"] >= 1
        assert after["tunrouter_conntrack_max"] == 65536
