"""lab up/down/status, `tunrouter run`, signals, crashes: nothing is ever left behind."""
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import LABS, lab_from, tunrouter

pytestmark = pytest.mark.netns


def namespaces() -> set[str]:
    return set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())


def root_tun_devices() -> str:
    return subprocess.run(["ip", "-o", "link", "show", "type", "tun"], capture_output=True, text=True).stdout


def test_up_down_leaves_nothing_behind(tmp_path):
    before_tun = root_tun_devices()
    with lab_from(LABS / "home.toml", tmp_path) as lab:
        assert {lab.ns("h1"), lab.ns("h2"), lab.ns("web")} <= namespaces()
        status = json.loads(tunrouter("lab", "status", lab.name, "--json").stdout)[0]
        assert status["routers"]["r1"]["alive"] and all(status["namespaces"].values())
        again = tunrouter("lab", "up", str(lab.path), check=False)
        assert again.returncode == 1 and "is up already" in again.stderr
        name = lab.name
    assert not {n for n in namespaces() if n.startswith(name)}
    assert not Path(f"/run/tunrouter/labs/{name}").exists()
    assert not Path(f"/run/tunrouter/{name}-r1.sock").exists()
    assert root_tun_devices() == before_tun


def _stat_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_down_after_router_crash(tmp_path):
    before_tun = root_tun_devices()
    with lab_from(LABS / "chain.toml", tmp_path) as lab:
        state = json.loads((lab.state_dir / "state.json").read_text())
        hosts = [p["pid"] for procs in state["hosts"].values() for p in procs]
        pid = json.loads(tunrouter("lab", "status", lab.name, "--json").stdout)[0]["routers"]["r1"]["pid"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while json.loads(tunrouter("lab", "status", lab.name, "--json").stdout)[0]["routers"]["r1"]["alive"]:
            assert time.monotonic() < deadline, "r1 still alive after SIGKILL"
            time.sleep(0.1)
        # r1's devices went with it: the kernel removes non-persistent TUN/TAP devices.
        links = lab.run("h1", "ip", "-o", "link").stdout
        assert "eth0" not in links
        # a crashed lab is not brought up over: it is taken down first
        again = tunrouter("lab", "up", str(lab.path), check=False)
        assert again.returncode == 1 and "is up already" in again.stderr
        assert Path(f"/run/tunrouter/{lab.name}-r1.sock").exists()       # stale, SIGKILL leaves it
        name = lab.name
    # `lab down` (lab_from) after the crash: nothing is left behind
    assert not {n for n in namespaces() if n.startswith(name)}
    assert not Path(f"/run/tunrouter/labs/{name}").exists()
    assert not list(Path("/run/tunrouter").glob(f"{name}-*"))            # sockets, NFLOG dirs
    assert root_tun_devices() == before_tun
    assert not [p for p in hosts if _stat_state(p) not in (None, "Z")]  # host commands stopped (or zombies of init)
    # and the lab comes up again from scratch
    with lab_from(LABS / "chain.toml", tmp_path) as lab2:
        lab2.run("h1", "ping", "-c", "1", "-W", "2", "198.51.100.80")


def test_down_of_unknown_lab_is_an_error():
    p = tunrouter("lab", "down", "nosuchlab" + secrets.token_hex(2), check=False)
    assert p.returncode == 1 and "no lab named" in p.stderr


def test_up_refuses_a_namespace_it_did_not_make(tmp_path):
    name = "t" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", f"{name}-h1"], check=True)
    try:
        lab = tmp_path / "l.toml"
        lab.write_text((LABS / "home.toml").read_text().replace('name = "home"', f'name = "{name}"'))
        shutil.copy(LABS / "home.rules", tmp_path / "home.rules")
        p = tunrouter("lab", "up", str(lab), check=False)
        assert p.returncode == 1 and f"namespace {name}-h1 exists" in p.stderr
        assert f"{name}-h1" in namespaces() and f"{name}-h2" not in namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", f"{name}-h1"])


@pytest.fixture
def two_namespaces():
    names = [f"t{secrets.token_hex(3)}-{x}" for x in "ab"]
    for n in names:
        subprocess.run(["ip", "netns", "add", n], check=True)
    try:
        yield names
    finally:
        for n in names:
            subprocess.run(["ip", "netns", "del", n])


def router_file(tmp_path, a, b, extra="") -> Path:
    p = tmp_path / "router.toml"
    p.write_text(textwrap.dedent(f"""
        [routers.edge]
        control = "{tmp_path}/edge.sock"
        [[routers.edge.interfaces]]
        name = "a0"
        device = "eth0"
        kind = "tap"
        netns = "{a}"
        address = "10.61.0.1/24"
        host_address = "10.61.0.2/24"
        gateway = true
        [[routers.edge.interfaces]]
        name = "b0"
        device = "eth0"
        netns = "{b}"
        address = "10.62.0.1/24"
        host_address = "10.62.0.2/24"
        gateway = true
        {extra}
    """))
    return p


def test_run_forwards_and_sigterm_removes_devices(tmp_path, two_namespaces):
    a, b = two_namespaces
    proc = subprocess.Popen([sys.executable, "-m", "tunrouter", "run", str(router_file(tmp_path, a, b))],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        sock = tmp_path / "edge.sock"
        deadline = time.monotonic() + 15
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.05)
        assert oct(sock.stat().st_mode & 0o777) == "0o600"
        subprocess.run(["ip", "netns", "exec", a, "ping", "-c", "1", "-w", "5", "10.62.0.2"], check=True,
                       capture_output=True)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    for ns in (a, b):
        links = subprocess.run(["ip", "netns", "exec", ns, "ip", "-o", "link"], capture_output=True, text=True).stdout
        assert "eth0" not in links
    assert not (tmp_path / "edge.sock").exists()


def test_run_with_missing_namespace_creates_nothing(tmp_path, two_namespaces):
    a, _ = two_namespaces
    p = tunrouter("run", str(router_file(tmp_path, a, "no-such-ns-" + secrets.token_hex(2))), check=False)
    assert p.returncode == 1
    assert "routers.edge.interfaces[1].netns" in p.stderr and "does not exist" in p.stderr
    assert "eth0" not in subprocess.run(["ip", "netns", "exec", a, "ip", "-o", "link"],
                                        capture_output=True, text=True).stdout


def test_run_with_taken_device_name_creates_nothing(tmp_path, two_namespaces):
    a, b = two_namespaces
    subprocess.run(["ip", "netns", "exec", b, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"], check=True)
    p = tunrouter("run", str(router_file(tmp_path, a, b)), check=False)
    assert p.returncode == 1 and "already exists in namespace" in p.stderr
    assert "eth0" not in subprocess.run(["ip", "netns", "exec", a, "ip", "-o", "link"],
                                        capture_output=True, text=True).stdout
