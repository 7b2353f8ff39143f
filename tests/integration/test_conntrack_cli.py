"""`tunrouter conntrack` and `tunrouter sysctl` against a running lab router."""
import re
import subprocess
import sys
import time

import pytest
from conftest import tunrouter

pytestmark = pytest.mark.netns

LINE = re.compile(r"^(?P<proto>\w+)\s+(?P<num>\d+) (?P<timeout>\d+) (?:(?P<state>[A-Z_]+) )?src=")


def entries(lab, *filters):
    p = tunrouter("conntrack", "--lab", lab.name, "-L", *filters)
    assert re.fullmatch(r"tunrouter v\S+ \(conntrack-tools format\): \d+ flow entries have been shown.\n", p.stderr)
    return p.stdout.splitlines()


def test_list_shows_a_finished_http_connection_in_time_wait(home):
    home.wait_listen("web", 80)
    home.run("h1", "curl", "-sS", "--max-time", "10", "-o", "/dev/null", "http://203.0.113.80/")
    lines = entries(home, "-p", "tcp", "--dport", "80")
    assert len(lines) == 1
    m = LINE.match(lines[0])
    assert (m["proto"], m["num"], m["state"]) == ("tcp", "6", "TIME_WAIT")
    assert 100 <= int(m["timeout"]) <= 120
    assert lines[0].endswith("[ASSURED] mark=0 use=1")
    # masqueraded (home.rules): the reply goes to the router's WAN address, same port
    assert re.search(r"src=10.1.0.2 dst=203.0.113.80 sport=(\d+) dport=80 "
                     r"src=203.0.113.80 dst=203.0.113.1 sport=80 dport=\1 ", lines[0]), lines[0]


def test_filters_count_delete_flush(home):
    home.run("h1", "ping", "-c", "1", "-W", "2", "203.0.113.80")
    home.run("h2", "ping", "-c", "1", "-W", "2", "10.1.0.2")
    assert len(entries(home, "-p", "icmp")) == 2
    assert len(entries(home, "-s", "10.2.0.0/24")) == 1
    assert entries(home, "-p", "tcp") == []
    assert tunrouter("conntrack", "--lab", home.name, "-C").stdout == "2\n"
    p = tunrouter("conntrack", "--lab", home.name, "-D", "-s", "10.2.0.2")
    assert p.stderr.endswith("1 flow entries have been deleted.\n") and "src=10.2.0.2" in p.stdout
    assert tunrouter("conntrack", "--lab", home.name, "-D", "-s", "10.2.0.2", check=False).returncode == 1
    tunrouter("conntrack", "--lab", home.name, "-F")
    assert tunrouter("conntrack", "--lab", home.name, "-C").stdout == "0\n"
    stats = tunrouter("conntrack", "--lab", home.name, "-S").stdout
    assert re.fullmatch(r"cpu=0   \tfound=0 invalid=\d+ insert=[1-9]\d* insert_failed=0 drop=0 early_drop=0 "
                        r"error=\d+ search_restart=0 clash_resolve=0 chaintoolong=0 \n", stats)


def test_events_stream_new_update_destroy(home):
    watch = subprocess.Popen([sys.executable, "-m", "tunrouter", "conntrack", "--lab", home.name, "-E",
                              "-p", "icmp"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        home.run("h1", "ping", "-c", "1", "-W", "2", "10.2.0.2")
        tunrouter("conntrack", "--lab", home.name, "-D", "-p", "icmp")
        time.sleep(0.5)
    finally:
        watch.terminate()
        out, _ = watch.communicate(timeout=10)
    tags = [line.split("]")[0].strip() + "]" for line in out.splitlines()]
    assert tags == ["[NEW]", "[UPDATE]", "[DESTROY]"], out
    assert out.splitlines()[0].startswith("    [NEW] icmp     1 30 src=10.1.0.2 dst=10.2.0.2 type=8 code=0")
    assert "[USERSPACE] portid=" in out.splitlines()[2]


def test_sysctl_changes_timeouts_at_run_time(home):
    out = tunrouter("sysctl", "--lab", home.name, "net.netfilter.nf_conntrack_icmp_timeout=7").stdout
    assert out == "net.netfilter.nf_conntrack_icmp_timeout = 7\n"
    home.run("h1", "ping", "-c", "1", "-W", "2", "203.0.113.80")
    (line,) = entries(home, "-p", "icmp")
    assert int(LINE.match(line)["timeout"]) <= 7
    bad = tunrouter("sysctl", "--lab", home.name, "net.netfilter.nf_conntrack_icmp_timeout=-1", check=False)
    assert bad.returncode == 1 and "out of range" in bad.stderr
    listing = tunrouter("sysctl", "--lab", home.name).stdout
    assert "net.netfilter.nf_conntrack_icmp_timeout = 7\n" in listing
    assert "net.netfilter.nf_conntrack_tcp_timeout_established = 432000\n" in listing
