"""Offloads in a real lab: TCP super-segments and partial checksums from the hosts' stacks,
through MASQUERADE and DNAT, to TUN ports (h2, web) and a TAP port (h1) that offload, and
to ports set to offload = false, where the router segments and checksums in software.

What arrives is checked byte for byte; the router's counters show that it
handled super-segments (more packets on the wire than frames it handled).
"""
import hashlib
import json
import re
import subprocess
import sys
import time

import pytest
from conftest import LABS, lab_from, need, tunrouter

pytestmark = pytest.mark.netns

SIZE = 8 << 20
# Reads one connection on port 9000 to its end; prints the byte count and md5.
SINK = ("import hashlib, socket\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('0.0.0.0', 9000)); s.listen(1); s.settimeout(30)\n"
        "c, _ = s.accept(); c.settimeout(30); h = hashlib.md5(); n = 0\n"
        "while True:\n"
        "    b = c.recv(1 << 16)\n"
        "    if not b: break\n"
        "    h.update(b); n += len(b)\n"
        "print(n, h.hexdigest())\n")
SOURCE = ("import socket, sys\n"
          "data = bytes(range(256)) * (%d // 256)\n"
          "s = socket.create_connection((sys.argv[1], 9000), timeout=30); s.sendall(data); s.close()\n"
          % SIZE)
SENT_MD5 = hashlib.md5(bytes(range(256)) * (SIZE // 256)).hexdigest()


def stats(lab) -> dict:
    return json.loads(tunrouter("stats", "--lab", lab.name, "--json").stdout)


def frames_handled(s: dict) -> int:
    return s["forwarded"] + s["local"] + s["arp"] + sum(s["drops"].values())


def upload(lab, src: str, dst_host: str, dst_addr: str) -> str:
    """SIZE bytes from src to a sink on dst_host; what the sink received: 'count md5'."""
    sink = subprocess.Popen(["ip", "netns", "exec", lab.ns(dst_host), "python3", "-c", SINK],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lab.wait_listen(dst_host, 9000)
        lab.run(src, "python3", "-c", SOURCE, dst_addr, timeout=60)
        out, err = sink.communicate(timeout=60)
        assert sink.returncode == 0, err
        return out.strip()
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()


def download_both(lab, tmp_path) -> None:
    """web's blob to h2 (TUN) and to h1 (TAP), checked."""
    need("curl")
    lab.wait_listen("web", 80)
    want = hashlib.md5((lab.state_dir / "hosts" / "web" / "blob.bin").read_bytes()).hexdigest()
    for host in ("h2", "h1"):
        out = tmp_path / f"{host}.bin"
        lab.run(host, "curl", "-sS", "--max-time", "30", "-o", str(out), "http://203.0.113.80/blob.bin")
        assert hashlib.md5(out.read_bytes()).hexdigest() == want, host


def test_downloads_to_a_tun_and_a_tap_port_arrive_intact(home, tmp_path):
    download_both(home, tmp_path)
    s = stats(home)
    assert sum(p["rx_packets"] for p in s["ports"].values()) > frames_handled(s), s
    assert s["drops"]["bad-offload"] == 0


def test_upload_through_masquerade_from_an_offloading_port(home):
    assert upload(home, "h2", "web", "203.0.113.80") == f"{SIZE} {SENT_MD5}"
    s = stats(home)
    assert s["ports"]["lan1"]["rx_packets"] > s["forwarded"] // 2, s     # h2 sent super-segments
    assert s["ports"]["wan0"]["tx_bytes"] >= SIZE


def test_upload_to_a_tap_host_through_dnat(home):
    """203.0.113.1:8080 is forwarded to h1:80 (home.rules): the sink listens there instead."""
    home.wait_listen("h1", 80)
    listener = home.run("h1", "ss", "-Hltnp", "sport = :80").stdout
    home.run("h1", "kill", re.search(r"pid=(\d+)", listener).group(1))     # the lab's web server
    sink = subprocess.Popen(["ip", "netns", "exec", home.ns("h1"), "python3", "-c",
                             SINK.replace("9000", "80")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.2)
        home.wait_listen("h1", 80)
        home.run("web", "python3", "-c", SOURCE.replace("9000", "8080"), "203.0.113.1", timeout=60)
        out, err = sink.communicate(timeout=60)
        assert out.strip() == f"{SIZE} {SENT_MD5}", err
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()


def test_a_smaller_mtu_beyond_the_router_gets_frag_needed_and_the_upload_adapts(tmp_path):
    """wan0's MTU is 1280, but web's own device is set back to 1500, so it announces an MSS
    of 1460: h2's super-segments, cut for 1500 bytes, are answered with
    fragmentation-needed until h2 lowers its path MTU."""
    with lab_from(LABS / "home.toml", tmp_path,
                  edit=lambda t: t.replace('address = "203.0.113.1/24"',
                                           'address = "203.0.113.1/24"\nmtu = 1280')) as lab:
        lab.run("web", "ip", "link", "set", "eth0", "mtu", "1500")
        assert upload(lab, "h2", "web", "203.0.113.80") == f"{SIZE} {SENT_MD5}"
        s = stats(lab)
        assert s["drops"]["frag-needed"] >= 1
        route = lab.run("h2", "ip", "route", "get", "203.0.113.80").stdout
        assert "mtu 1280" in route, route


def test_ports_without_offloads_get_segments_finished_here(tmp_path):
    """wan0 and h1's lan0 (TAP) with offload = false: h2's super-segments are cut and
    checksummed for wan0, web's super-segments are never made, h1 gets plain frames."""
    def plain(text: str) -> str:
        for port in ("wan0", "lan0"):
            text = text.replace(f'name = "{port}"', f'name = "{port}"\noffload = false')
        return text
    with lab_from(LABS / "home.toml", tmp_path, edit=plain) as lab:
        assert upload(lab, "h2", "web", "203.0.113.80") == f"{SIZE} {SENT_MD5}"
        s = stats(lab)
        assert s["ports"]["wan0"]["tx_packets"] >= SIZE // 1500      # one packet per write
        assert s["ports"]["lan1"]["rx_packets"] > frames_handled(s)     # h2 still offloads
        download_both(lab, tmp_path)


def test_capture_keeps_super_segments_whole_and_tcpdump_reads_them(home, tmp_path):
    """On h1's TAP port the frames out are super-segments behind Ethernet, longer than
    65535 bytes at most: the pcap's snapshot length allows them."""
    need("curl", "tcpdump")
    home.wait_listen("web", 80)
    pcap = tmp_path / "lan0.pcap"
    p = subprocess.Popen([sys.executable, "-m", "tunrouter", "capture", "--lab", home.name,
                          "-c", "10", "-d", "out", "-w", str(pcap), "lan0", "tcp"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.7)
        home.run("h1", "curl", "-sS", "--max-time", "30", "-o", "/dev/null", "http://203.0.113.80/blob.bin")
        p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = subprocess.run(["tcpdump", "-nn", "-e", "-r", str(pcap)], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    lengths = [int(m) for m in re.findall(r"ethertype IPv4 \(0x0800\), length (\d+):", out.stdout)]
    assert len(lengths) == 10 and max(lengths) > 1514, lengths
