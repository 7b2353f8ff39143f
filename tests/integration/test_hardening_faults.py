"""Faults a running router must survive: helpers that raise or loop, control clients that
vanish mid-request or mid-stream, a full disk under the LOG and NFLOG sinks, and broken
files handed to a running router.  Through all of it the router keeps forwarding, keeps
answering other clients, and keeps its ruleset and connections.  Every wait is bounded."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import LABS, lab_from, tunrouter

pytestmark = pytest.mark.netns

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "bad"


def stats(lab) -> dict:
    return json.loads(tunrouter("stats", "--lab", lab.name, "--json", timeout=20).stdout)


def sock_path(lab) -> str:
    return f"/run/tunrouter/{lab.name}-r1.sock"


def router_pid(lab) -> int:
    return json.loads(tunrouter("lab", "status", lab.name, "--json").stdout)[0]["routers"]["r1"]["pid"]


def router_log(lab) -> str:
    return (lab.state_dir / "router-r1.log").read_text(errors="replace")


def still_serving(lab, pid: int) -> None:
    """The same router process forwards (a ping across it) and answers (ping, stats)."""
    assert router_pid(lab) == pid
    lab.run("h1", "ping", "-c", "1", "-W", "2", "203.0.113.80", timeout=10)
    from tunrouter.driver.control import request
    assert request(sock_path(lab), "ping", timeout=5)["pid"] == pid
    assert stats(lab)["forwarded"] > 0


def raw(lab, timeout: float = 5.0) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path(lab))
    return s


def req(cmd: str, **args) -> bytes:
    return json.dumps({"v": 1, "cmd": cmd, **args}).encode() + b"\n"


# --- control clients that go away --------------------------------------------------------

def test_control_clients_that_vanish_mid_request_or_mid_stream(home):
    pid = router_pid(home)
    home.run("h1", "ping", "-c", "1", "-W", "2", "203.0.113.80")
    # half a JSON line, then close
    s = raw(home)
    s.sendall(b'{"v": 1, "cmd": "sta')
    s.close()
    # half a line and stay connected (silent): others are still answered meanwhile
    silent = raw(home)
    silent.sendall(b'{"v": 1, "cmd": "ct_li')
    # a request, closed before the answer is read (a long answer: the conntrack table)
    for cmd in ("stats", "ct_list", "ipt_save", "routes"):
        s = raw(home)
        s.sendall(req(cmd))
        s.close()
    # a request then an RST (SO_LINGER 0) before reading
    s = raw(home)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.sendall(req("stats"))
    s.close()
    # streams opened and abandoned: one closes at once, one never reads (while traffic flows)
    abandoned = []
    for cmd, args in (("trace", {}), ("capture", {"port": "lan0"}), ("ct_events", {}),
                      ("ct_expect_events", {})):
        s = raw(home)
        s.sendall(req(cmd, **args))
        assert json.loads(s.makefile("rb").readline())["ok"], cmd
        abandoned.append(s)
        s2 = raw(home)
        s2.sendall(req(cmd, **args))
        s2.close()
    # traffic the streams would carry, some of it bulky
    home.run("h1", "ping", "-c", "20", "-i", "0.01", "-s", "1400", "-W", "2", "203.0.113.80", timeout=20)
    for s in abandoned[:2]:                      # vanish without a word
        s.close()
    still_serving(home, pid)
    for s in abandoned[2:]:                      # vanish with an RST
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    home.run("h1", "ping", "-c", "5", "-i", "0.01", "-W", "2", "203.0.113.80", timeout=20)
    silent.close()
    still_serving(home, pid)
    # a fresh stream still works after all that
    s = raw(home)
    s.sendall(req("trace"))
    f = s.makefile("rb")
    assert json.loads(f.readline())["ok"]
    home.run("h1", "ping", "-c", "1", "-W", "2", "203.0.113.80")
    assert "item" in json.loads(f.readline())
    s.close()
    assert "Traceback" not in router_log(home)


def test_a_stream_client_that_never_reads_is_dropped_not_waited_for(home):
    """A capture subscriber that stops reading while a flood passes: forwarding goes on at
    full pace (the router never blocks on it; a full buffer drops it as overrun)."""
    pid = router_pid(home)
    s = raw(home)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(req("capture", port="wan0"))
    f = s.makefile("rb")
    assert json.loads(f.readline())["ok"]
    t0 = time.monotonic()
    home.run("h1", "ping", "-f", "-c", "3000", "-s", "1400", "-w", "20", "203.0.113.80", timeout=30)
    assert time.monotonic() - t0 < 25
    still_serving(home, pid)
    s.settimeout(5)
    tail = b""
    try:
        while chunk := s.recv(1 << 20):
            tail = (tail + chunk)[-4096:]
    except (TimeoutError, socket.timeout):
        pass
    # Either it was dropped as too slow (overrun) or its buffer held everything; either
    # way what it got is whole JSON lines.
    assert tail.endswith(b"\n") and (b"overrun" in tail or b'"item"' in tail)
    s.close()


# --- a full disk under the sinks ----------------------------------------------------------

FLOOD_RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p icmp -j LOG --log-prefix "flood: "
-A FORWARD -p icmp -j NFLOG --nflog-group 3 --nflog-prefix "flood: "
COMMIT
"""


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True, timeout=10)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {p.stderr.strip()}")
    try:
        (mnt / "filler").write_bytes(bytes(12 << 10))   # freed later: room again
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=10)


def pcap_records(path: Path) -> int:
    """The records of a pcap file, which must end exactly after the last one."""
    data = path.read_bytes()
    assert data[:4] == bytes.fromhex("d4c3b2a1") and len(data) >= 24
    off, n = 24, 0
    while off < len(data):
        assert off + 16 <= len(data), f"a record header cut short at {off}"
        incl = int.from_bytes(data[off + 8:off + 12], "little")
        assert incl <= 65535 + 512 and off + 16 + incl <= len(data), f"a record cut short at {off}"
        assert data[off + 16] == 2, f"not an NFLOG record at {off}"        # AF_INET
        off += 16 + incl
        n += 1
    return n


def test_a_full_disk_under_log_and_nflog_loses_lines_counts_them_and_forwarding_goes_on(tmp_path, small_disk):
    (tmp_path / "flood.rules").write_text(FLOOD_RULES)

    def edit(text):
        return text.replace('[routers.r1]\nrules = "home.rules"\n',
                            '[routers.r1]\nrules = "flood.rules"\n'
                            f'[routers.r1.log]\nfile = "{small_disk}/fw.log"\n'
                            f'[routers.r1.nflog]\ndir = "{small_disk}/nflog"\n')
    with lab_from(LABS / "home.toml", tmp_path, edit=edit) as lab:
        pid = router_pid(lab)
        lab.run("h1", "ping", "-f", "-c", "2000", "-s", "1000", "-w", "20", "203.0.113.80", timeout=30)
        deadline = time.monotonic() + 10
        while True:
            r = stats(lab)["rules"]
            if r["log_lost"] > 0 and r["nflog_lost"] > 0:
                break
            assert time.monotonic() < deadline, r
            time.sleep(0.2)
        assert r["log_written"] > 0 and r["nflog_written"] > 0       # until the disk filled
        still_serving(lab, pid)
        # and again, after the failures: the router goes on, loss keeps being counted
        lab.run("h1", "ping", "-c", "50", "-i", "0.01", "-s", "1000", "-W", "2", "203.0.113.80", timeout=20)
        r2 = stats(lab)["rules"]
        assert r2["log_lost"] > r["log_lost"] and r2["nflog_lost"] > r["nflog_lost"]
        log = router_log(lab)
        assert log.count("LOG sink") == 1, log[-3000:]               # reported once
        assert log.count("NFLOG group 3: cannot write") == 1, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        # room again: the sinks append to the same files, which hold whole lines and whole
        # records only (a write cut short by the full disk is cut off the file)
        (small_disk / "filler").unlink()
        lab.run("h1", "ping", "-c", "3", "-i", "0.05", "-W", "2", "203.0.113.80", timeout=10)
        deadline = time.monotonic() + 5
        while (r3 := stats(lab)["rules"])["nflog_written"] <= r2["nflog_written"] \
                or r3["log_written"] <= r2["log_written"]:
            assert time.monotonic() < deadline, ("the sinks did not write again once there was room", r3)
            time.sleep(0.1)
        lines = (small_disk / "fw.log").read_text().split("\n")
        assert lines[-1] == "" and len(lines) - 1 == r3["log_written"]
        assert all(x.startswith("flood: IN=") and "PROTO=ICMP" in x for x in lines[:-1])
        assert pcap_records(small_disk / "nflog" / "nflog-3.pcap") == r3["nflog_written"]
        still_serving(lab, pid)


# --- helpers that fault, in a real router process -----------------------------------------

FAULTY = '''
from tunrouter.helpers.base import UDP, Helper


class Boom(Helper):
    name, proto, ports = "boom", UDP, (9991,)

    def help(self, pkt):
        raise RuntimeError("boom on every packet")


class Spin(Helper):
    name, proto, ports = "spin", UDP, (9992,)

    def help(self, pkt):
        while True:
            pass
'''


def test_helpers_that_raise_or_loop_are_cut_off_switched_off_and_the_router_forwards(tmp_path, monkeypatch):
    from plugins import install_helper_dist
    root = install_helper_dist(tmp_path / "site", monkeypatch,
                               {"boom": "faulty_helpers:Boom", "spin": "faulty_helpers:Spin"},
                               {"faulty_helpers": FAULTY}, dist="tunrouter_faulty")
    # the router process is a child of `lab up`: it finds the entry points on PYTHONPATH
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))

    def edit(text):
        return text.replace('[routers.r1]\nrules = "home.rules"\n',
                            '[routers.r1]\nrules = "home.rules"\n'
                            '[routers.r1.helpers]\nauto = true\nmax_faults = 3\nbudget_ms = 50\n')
    with lab_from(LABS / "home.toml", tmp_path, edit=edit) as lab:
        pid = router_pid(lab)
        assert {"boom", "spin"} <= set(stats(lab)["helpers"]["loaded"])
        receivers = [subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("web"), sys.executable, "-c",
             "import socket,sys\n"
             "s=socket.socket(2,2);s.settimeout(15)\n"
             "s.bind(('0.0.0.0',int(sys.argv[1])));n=0\n"
             "try:\n"
             "  while n<10: s.recv(100); n+=1\n"
             "except OSError: pass\n"
             "print(n)", str(port)], stdout=subprocess.PIPE, text=True) for port in (9991, 9992)]
        try:
            time.sleep(0.5)
            send = ("import socket,time\n"
                    "for port in (9991, 9992):\n"
                    "  for i in range(10):\n"
                    "    s=socket.socket(2,2); s.sendto(b'x'*20, ('203.0.113.80', port)); s.close()\n"
                    "    time.sleep(0.02)\n")
            lab.run("h1", sys.executable, "-c", send, timeout=20)
            got = [int(p.communicate(timeout=20)[0] or 0) for p in receivers]
        finally:
            for p in receivers:
                if p.poll() is None:
                    p.kill()
                    p.wait(timeout=5)
        assert got == [10, 10]                        # on_fault = accept: every packet forwarded
        h = stats(lab)["helpers"]
        assert h["faults"].get("boom") == 3 and h["faults"].get("spin") == 3, h
        assert {"boom", "spin"} <= set(h["disabled"]), h
        log = router_log(lab)
        assert "switched off after 3 faults" in log and "HelperTimeout" in log
        still_serving(lab, pid)


# --- broken files handed to a running router ----------------------------------------------

def _state(lab) -> tuple[str, str]:
    save = tunrouter("iptables-save", "--lab", lab.name).stdout
    ct = tunrouter("conntrack", "--lab", lab.name, "-L").stdout
    return save, ct


BROKEN_RULES = sorted(CORPUS.glob("rules-*.rules"))


def test_a_running_router_refuses_every_broken_ruleset_and_keeps_its_state(home):
    home.run("h1", "ping", "-c", "1", "-W", "2", "203.0.113.80")
    save, ct = _state(home)
    assert "icmp" in ct and "home-drop" in save
    for path in BROKEN_RULES:
        p = tunrouter("iptables-restore", "--lab", home.name, str(path), check=False)
        assert p.returncode != 0 and "line " in p.stderr, (path.name, p.stderr)
    after_save, after_ct = _state(home)
    assert after_save == save
    assert "icmp" in after_ct
    home.run("h1", "ping", "-c", "1", "-W", "2", "203.0.113.80")


def test_reload_with_broken_router_files_keeps_the_state(home):
    """`tunrouter reload` with broken lab files in place (TOML errors, broken rules): refused,
    the message names the file, the old ruleset and connections stay."""
    home.run("h1", "ping", "-c", "1", "-W", "2", "203.0.113.80")
    save, _ = _state(home)
    good = home.path.read_text()
    rules = home.path.parent / "home.rules"
    good_rules = rules.read_text()
    breakages = [
        (good.replace('[routers.r1]\n', '[routers.r1\n', 1), "not valid TOML"),
        (good.replace('address = "10.1.0.1/24"', 'address = "10.1.0.300/24"'), "routers.r1.interfaces[0].address"),
        (good.replace('[routers.r1]\n', '[routers.r1]\nfirewall = true\n', 1), "routers.r1.firewall: unknown key"),
        (good.replace('rules = "home.rules"', 'rules = "missing.rules"'), "missing.rules: cannot read"),
        (good.replace('[routers.r1]\n', '[routers.r1]\n[routers.r1.log]\nformat = "xml"\n', 1), "routers.r1.log.format"),
    ]
    try:
        for text, frag in breakages:
            home.path.write_text(text)
            p = tunrouter("reload", "--lab", home.name, check=False)
            assert p.returncode == 1 and frag in p.stderr and str(home.path) in p.stderr, (frag, p.stderr)
        home.path.write_text(good)
        for path in BROKEN_RULES[:6]:
            rules.write_text(path.read_text())
            p = tunrouter("reload", "--lab", home.name, check=False)
            assert p.returncode == 1 and "home.rules: line " in p.stderr, (path.name, p.stderr)
    finally:
        home.path.write_text(good)
        rules.write_text(good_rules)
    after_save, after_ct = _state(home)
    assert after_save == save and "icmp" in after_ct
    home.run("h1", "ping", "-c", "1", "-W", "2", "203.0.113.80")
    assert tunrouter("reload", "--lab", home.name).stdout.startswith("reloaded ")


def test_clients_that_ask_for_a_big_answer_and_never_read_do_not_stall_forwarding(home, tmp_path):
    """An answer bigger than the socket's buffer, to a client that never reads it: the
    router must not wait on that client while packets queue up behind it."""
    big = home.path.parent / "home.rules"
    rules = big.read_text().replace(
        '-A FORWARD -j LOG --log-prefix "home-drop: "',
        "\n".join(f"-A FORWARD -s 192.0.2.{i % 250 + 1} -d 198.18.{i // 250}.{i % 250 + 1} "
                  f"-p tcp -m tcp --dport {1000 + i} -m comment --comment \"padding rule {i}\" -j DROP"
                  for i in range(6000)) + '\n-A FORWARD -j LOG --log-prefix "home-drop: "')
    f = tmp_path / "big.rules"
    f.write_text(rules)
    tunrouter("iptables-restore", "--lab", home.name, str(f), timeout=60)
    pid = router_pid(home)
    hogs = []
    try:
        for _ in range(5):
            s = raw(home)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(req("ipt_save"))
            hogs.append(s)
        t0 = time.monotonic()
        p = home.run("h1", "ping", "-c", "20", "-i", "0.05", "-W", "1", "203.0.113.80", timeout=30, check=False)
        took = time.monotonic() - t0
    finally:
        for s in hogs:
            s.close()
    assert " 0% packet loss" in p.stdout and took < 4, (took, p.stdout)
    still_serving(home, pid)
    # and a client that does read gets the whole of the big answer
    saved = tunrouter("iptables-save", "--lab", home.name, timeout=30).stdout
    assert saved.count('"padding rule') == 6000 and "home-drop" in saved
