"""Traffic through real routers in real namespaces: ping, traceroute, tracepath, curl, iperf3."""
import hashlib
import json
import re

import pytest
from conftest import LABS, lab_from, need, tunrouter

pytestmark = pytest.mark.netns


def test_ping_across_tap_and_tun_ports(home):
    home.run("h1", "ping", "-c", "2", "-W", "2", "203.0.113.80")      # TAP -> TUN
    home.run("h2", "ping", "-c", "2", "-W", "2", "10.1.0.2")          # TUN -> TAP
    out = home.run("h2", "ping", "-c", "1", "-W", "2", "203.0.113.80").stdout
    assert "ttl=63" in out                                            # one hop: TTL decremented


def test_default_lab_refuses_inbound_and_forwards_its_port(home):
    """home.rules: the WAN reaches no LAN host directly, only h1's web server through 8080."""
    need("curl")
    assert home.run("web", "ping", "-c", "1", "-W", "1", "10.2.0.2", check=False).returncode != 0
    home.wait_listen("h1", 80)
    p = home.run("web", "curl", "-sS", "--max-time", "10", "http://203.0.113.1:8080/")
    assert p.stdout == "h1 says hello\n"


@pytest.mark.parametrize("addr", ["10.1.0.1", "10.2.0.1", "203.0.113.1"])
def test_router_answers_ping_on_each_of_its_addresses(home, addr):
    assert "ttl=64" in home.run("h1", "ping", "-c", "1", "-W", "2", addr).stdout


def test_http_download_bytes_match(home):
    need("curl")
    home.wait_listen("web", 80)
    blob = (home.state_dir / "hosts" / "web" / "blob.bin").read_bytes()
    p = home.run("h1", "sh", "-c", "curl -sS --max-time 20 http://203.0.113.80/blob.bin | md5sum")
    assert len(blob) == 1 << 20
    assert p.stdout.split()[0] == hashlib.md5(blob).hexdigest()


def test_iperf3_tcp_through_the_router(home):
    need("iperf3")
    home.run("web", "iperf3", "-s", "-D", "--bind", "203.0.113.80")
    home.wait_listen("web", 5201)
    out = json.loads(home.run("h2", "iperf3", "-c", "203.0.113.80", "-t", "2", "-J", timeout=30).stdout)
    received = out["end"]["sum_received"]["bytes"]
    assert received > 1_000_000, out["end"]


def test_traceroute_lists_both_routers(chain):
    need("traceroute")
    out = chain.run("h1", "traceroute", "-n", "-q", "1", "-w", "2", "-m", "5", "198.51.100.80").stdout
    hops = re.findall(r"^\s*\d+\s+(\S+)", out, re.M)
    assert hops == ["10.1.0.1", "192.0.2.2", "198.51.100.80"], out


def test_http_across_two_routers(chain):
    need("curl")
    chain.wait_listen("srv", 80)
    p = chain.run("h1", "curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                  "http://198.51.100.80/")
    assert p.stdout == "200"


def test_tracepath_finds_the_smaller_mtu_beyond_the_router(tmp_path):
    need("tracepath")
    with lab_from(LABS / "home.toml", tmp_path,
                  edit=lambda t: t.replace('address = "203.0.113.1/24"', 'address = "203.0.113.1/24"\nmtu = 1280')) as lab:
        out = lab.run("h2", "tracepath", "-n", "203.0.113.80").stdout
        assert "pmtu 1280" in out, out
        p = lab.run("h2", "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1400", "203.0.113.80", check=False)
        assert p.returncode != 0 and "1280" in p.stdout + p.stderr


def test_stats_count_what_passed(home):
    home.run("h1", "ping", "-c", "3", "-W", "2", "203.0.113.80")
    s = json.loads(tunrouter("stats", "--lab", home.name, "--json").stdout)
    assert s["forwarded"] >= 6
    assert s["ports"]["lan0"]["rx_packets"] >= 3 and s["ports"]["wan0"]["tx_packets"] >= 3
    assert s["arp"] >= 1                      # h1 is behind a TAP port: it asked for the router
    text = tunrouter("stats", "--lab", home.name).stdout
    assert re.search(r"^\s+forwarded\s+\d+$", text, re.M) and "bad-checksum" in text


def test_lab_exec_runs_in_the_host_namespace(home):
    out = tunrouter("lab", "exec", home.name, "h2", "--", "ip", "-br", "addr", "show", "eth0").stdout
    assert "10.2.0.2/24" in out


@pytest.mark.parametrize("dst", ["10.2.0.2", "10.1.0.1"], ids=["across", "to-router"])
def test_ping_of_4000_bytes_arrives_whole_and_back(home, dst):
    out = home.run("h1", "ping", "-c", "2", "-W", "2", "-s", "4000", dst).stdout
    assert "4008 bytes from" in out and " 0% packet loss" in out, out
    s = json.loads(tunrouter("stats", "--lab", home.name, "--json").stdout)
    assert s["reassembly"]["ReasmOKs"] >= 2
