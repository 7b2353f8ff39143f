"""Rules in a real lab (netns/home.toml): the tutorial's rulesets, seen by curl and hping3.

One lab for the module (bringing a lab up is the slow part); each test loads
its own ruleset with `tunrouter iptables-restore`, as an operator would.
"""
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import LABS, lab_from, need, tunrouter

pytestmark = pytest.mark.netns

# The tutorial's stateful firewall, guarding the web host: only SSH and HTTP
# go in as NEW, everything comes back as ESTABLISHED; LOG the new HTTP ones.
STATEFUL = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -o wan0 -p tcp --dport 81 -j REJECT --reject-with tcp-reset
-A FORWARD -o wan0 -p tcp -m tcp --dport 80 -m conntrack --ctstate NEW -j LOG --log-prefix "http-new: "
-A FORWARD -o wan0 -p tcp -m multiport --dports 22,80 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
COMMIT
"""

SYN_FLOOD = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:syn-flood - [0:0]
-A FORWARD -p tcp --syn -j syn-flood
-A syn-flood -m limit --limit 10/s --limit-burst 100 -j RETURN
-A syn-flood -j DROP
COMMIT
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    need("curl", "hping3")
    tmp = tmp_path_factory.mktemp("rules")
    (tmp / "stateful.rules").write_text(STATEFUL)

    def edit(text):
        text = text.replace('[routers.r1]\nrules = "home.rules"\n',
                            f'[routers.r1]\nrules = "stateful.rules"\n'
                            f'[routers.r1.log]\nfile = "{tmp}/fw.log"\n')
        # A second server the firewall does not let in.
        return text.replace('--bind 0.0.0.0"]', '--bind 0.0.0.0", '
                                                '"exec python3 -m http.server 8080"]')
    with lab_from(LABS / "home.toml", tmp, edit=edit) as lab:
        lab.log = tmp / "fw.log"
        lab.wait_listen("web", 80)
        lab.wait_listen("web", 8080)
        yield lab


def restore(lab, text, tmp_path, *extra, check=True):
    f = tmp_path / "new.rules"
    f.write_text(text)
    return tunrouter("iptables-restore", "--lab", lab.name, *extra, str(f), check=check)


def curl(lab, port):
    return lab.run("h1", "curl", "-sS", "--max-time", "2", "-o", "/dev/null", "-w",
                   "%{http_code}", f"http://203.0.113.80:{port}/", check=False)


def test_stateful_firewall_and_log_and_reject(lab, tmp_path):
    restore(lab, STATEFUL, tmp_path)
    ok = curl(lab, 80)
    assert (ok.returncode, ok.stdout) == (0, "200"), ok.stderr
    assert curl(lab, 8080).returncode == 28                  # dropped: curl times out
    # tcp-reset: refused at once (exit 7, "Couldn't connect"), not a timeout (28).
    t0 = time.monotonic()
    refused = curl(lab, 81)
    assert refused.returncode == 7 and time.monotonic() - t0 < 1.5, refused.stderr
    # The LOG line reaches the sink with its prefix (the loop writes it right away).
    deadline = time.monotonic() + 3
    while "http-new: " not in (lab.log.read_text() if lab.log.exists() else ""):
        assert time.monotonic() < deadline, "no LOG line in the sink"
        time.sleep(0.1)
    line = next(x for x in lab.log.read_text().splitlines() if x.startswith("http-new: "))
    assert re.match(r"http-new: IN=lan0 OUT=wan0 MAC=\S+ SRC=10\.1\.0\.2 DST=203\.0\.113\.80 "
                    r"LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=\d+ DF PROTO=TCP SPT=\d+ DPT=80 ", line)
    listing = tunrouter("iptables", "--lab", lab.name, "-L", "FORWARD", "-n", "-v").stdout
    assert listing.startswith("Chain FORWARD (policy DROP ")
    assert re.search(r"^\s+1\s+\d+ REJECT\s+6\s+--\s+\*\s+wan0 .* reject-with tcp-reset$",
                     listing, re.MULTILINE), listing


def test_broken_restore_keeps_the_old_ruleset(lab, tmp_path):
    restore(lab, STATEFUL, tmp_path)
    before = tunrouter("iptables-save", "--lab", lab.name).stdout
    p = restore(lab, STATEFUL.replace("--dports 22,80", "--dprots 22,80"), tmp_path, check=False)
    assert p.returncode == 1
    assert "line 8: " in p.stderr and "--dprots" in p.stderr
    assert tunrouter("iptables-save", "--lab", lab.name).stdout == before
    assert curl(lab, 80).stdout == "200"


def test_syn_flood_chain_under_hping3(lab, tmp_path):
    restore(lab, SYN_FLOOD, tmp_path)
    start = time.monotonic()
    lab.run("h1", "timeout", "3", "hping3", "-q", "-S", "--flood", "-p", "80", "203.0.113.80",
            check=False, timeout=20)
    elapsed = time.monotonic() - start
    saved = tunrouter("iptables-save", "-c", "--lab", lab.name).stdout
    passed = int(re.search(r"^\[(\d+):\d+\] -A syn-flood -m limit .* -j RETURN$", saved, re.MULTILINE)[1])
    dropped = int(re.search(r"^\[(\d+):\d+\] -A syn-flood -j DROP$", saved, re.MULTILINE)[1])
    assert 100 <= passed <= 100 + 10 * elapsed + 10, (passed, elapsed)
    assert dropped > passed, saved
    # The router is still up and forwarding.
    lab.run("h1", "ping", "-c", "1", "-W", "2", "203.0.113.80")
    tunrouter("iptables", "--lab", lab.name, "-Z")
    saved = tunrouter("iptables-save", "-c", "--lab", lab.name).stdout
    assert "-j DROP" in saved and not re.search(r"^\[[1-9]", saved, re.MULTILINE)


def test_nflog_capture_is_read_by_tcpdump(lab, tmp_path):
    need("tcpdump")
    # First in FORWARD, so it sees the ESTABLISHED packets too: both ways, both pings.
    nflog = STATEFUL.replace(":OUTPUT ACCEPT [0:0]\n", ":OUTPUT ACCEPT [0:0]\n"
                             '-A FORWARD -p icmp -j NFLOG --nflog-group 7 --nflog-prefix "icmp: "\n')
    restore(lab, nflog, tmp_path)
    lab.run("h1", "ping", "-c", "2", "-W", "2", "203.0.113.80")
    pcap = Path(f"/run/tunrouter/{lab.name}-r1-nflog/nflog-7.pcap")
    deadline = time.monotonic() + 3
    while not pcap.exists() or pcap.stat().st_size < 24 + 4 * 100:
        assert time.monotonic() < deadline, "no NFLOG capture"
        time.sleep(0.1)
    out = subprocess.run(["tcpdump", "-nr", str(pcap)], capture_output=True, text=True, timeout=20)
    lines = out.stdout.splitlines()
    assert sum("10.1.0.2 > 203.0.113.80: ICMP echo request" in x for x in lines) == 2, out.stdout
    assert sum("203.0.113.80 > 10.1.0.2: ICMP echo reply" in x for x in lines) == 2, out.stdout
