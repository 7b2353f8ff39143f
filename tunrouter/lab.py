"""Labs: namespaces, routers and host commands from one lab file, up and down as a unit.

`lab up` records everything it makes in /run/tunrouter/labs/<lab>/state.json
as it makes it; `lab down` removes exactly that, so it works after a crashed
router, after a half-finished `lab up`, and never touches a namespace or
process it did not make.  Routers run as `tunrouter run FILE --router NAME`
processes; their devices vanish with them (non-persistent TUN/TAP).
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pyroute2 import IPRoute

from tunrouter.config import RUN_DIR, HostConfig, LabConfig, load_lab
from tunrouter.driver import netns
from tunrouter.driver.control import ControlError, request

LABS_DIR = RUN_DIR / "labs"
READY_TIMEOUT = 20.0
BRIDGE = "br0"


class LabError(Exception):
    pass


def state_dir(name: str) -> Path:
    return LABS_DIR / name


def _load_state(name: str) -> dict | None:
    try:
        return json.loads((state_dir(name) / "state.json").read_text())
    except FileNotFoundError:
        return None


def _save_state(state: dict) -> None:
    d = state_dir(state["name"])
    tmp = d / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(d / "state.json")


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _starttime(pid: int) -> str | None:
    """The kernel's start time of pid: with the pid, it names one process for good."""
    fields = _stat(pid)
    return fields[19] if fields else None


def _alive(proc: dict) -> bool:
    """Still our process and not a zombie waiting for a parent that does not reap."""
    fields = _stat(proc["pid"])
    return fields is not None and fields[19] == proc["start"] and fields[0] not in "ZX"


def _spawn(argv: list[str], log: Path, cwd: Path | None = None, env: dict | None = None) -> dict:
    with open(log, "ab") as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             cwd=cwd, env=env, start_new_session=True)
    return {"pid": p.pid, "start": _starttime(p.pid), "argv": argv, "log": str(log)}


def _stop(proc: dict, timeout: float = 5.0) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left."""
    if not _alive(proc):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc["pid"], sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc["pid"], os.WNOHANG)
            if not _alive(proc):
                return
            time.sleep(0.05)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("labs need root (network namespaces, TUN/TAP devices); run it with sudo")


def up(path: str | Path) -> dict:
    """Build the lab in path; return its state.  On failure remove what was made."""
    cfg = load_lab(path)
    _require_root()
    state = _load_state(cfg.name)
    if state is not None:
        if lab_is_up(state):
            raise LabError(f"lab {cfg.name} is up already (from {state['file']}); "
                           f"take it down first: tunrouter lab down {cfg.name}")
        down(cfg.name)                                # leftovers of a crash: clear them
    for h in cfg.hosts.values():
        if netns.exists(h.netns):
            raise LabError(f"namespace {h.netns} exists and lab {cfg.name} did not make it; "
                           f"remove it or set hosts.{h.name}.netns to another name")
    d = state_dir(cfg.name)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    state = {"name": cfg.name, "file": str(Path(path).resolve()), "started": time.time(),
             "namespaces": [], "routers": {}, "hosts": {}}
    _save_state(state)
    try:
        _build(cfg, state)
    except BaseException:
        down(cfg.name)
        raise
    return state


def _build(cfg: LabConfig, state: dict) -> None:
    d = state_dir(cfg.name)
    for h in cfg.hosts.values():
        netns.create(h.netns)
        state["namespaces"].append(h.netns)
        _save_state(state)
        if h.bridge:
            _make_bridge(h.netns)
    for h in cfg.hosts.values():
        if h.segment is not None:
            _plug(h, cfg.hosts[h.segment].netns)
    for r in cfg.routers.values():
        proc = _spawn([sys.executable, "-m", "tunrouter", "run", state["file"], "--router", r.name],
                      d / f"router-{r.name}.log")
        proc["socket"] = str(r.control)
        state["routers"][r.name] = proc
        _save_state(state)
        _wait_ready(r.name, proc)
    for h in cfg.hosts.values():
        if not h.run:
            continue
        cwd = d / "hosts" / h.name
        cwd.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, TUNROUTER_LAB=cfg.name, TUNROUTER_HOST=h.name)
        procs = [_spawn(["ip", "netns", "exec", h.netns, "sh", "-c", cmd],
                        d / f"host-{h.name}.log", cwd=cwd, env=env) for cmd in h.run]
        state["hosts"][h.name] = procs
        _save_state(state)


def _make_bridge(ns: str) -> None:
    """A bridge for TAP links between routers; bridged frames skip iptables in the namespace."""
    with netns.inside(ns), IPRoute() as ipr:
        ipr.link("add", ifname=BRIDGE, kind="bridge")
        idx = ipr.link_lookup(ifname=BRIDGE)[0]
        ipr.link("set", index=idx, state="up")
        with contextlib.suppress(OSError):
            netns.write_sysctl(f"net.ipv6.conf.{BRIDGE}.disable_ipv6", "1")
        with contextlib.suppress(OSError):
            netns.write_sysctl("net.bridge.bridge-nf-call-iptables", "0")


def _plug(h: HostConfig, bridge_ns: str) -> None:
    """A veth pair: eth0 in h's namespace, the peer (named after h) in br0 of bridge_ns.

    Both ends live in the lab's namespaces, so they go with them at `lab down`.
    """
    with netns.inside(h.netns), IPRoute() as ipr:
        ipr.link("add", ifname="eth0", kind="veth", peer=h.name)
        ipr.link("set", index=ipr.link_lookup(ifname=h.name)[0], net_ns_fd=bridge_ns)
        with contextlib.suppress(OSError):
            netns.write_sysctl("net.ipv6.conf.eth0.disable_ipv6", "1")
        idx = ipr.link_lookup(ifname="eth0")[0]
        addr, plen = h.address.split("/")
        ipr.addr("add", index=idx, address=addr, prefixlen=int(plen))
        ipr.link("set", index=idx, state="up")
        if h.gateway is not None:
            ipr.route("replace", dst="0.0.0.0/0", gateway="%d.%d.%d.%d" % tuple(h.gateway),
                      oif=idx)
    with netns.inside(bridge_ns), IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=h.name)[0]
        ipr.link("set", index=idx, master=ipr.link_lookup(ifname=BRIDGE)[0])
        ipr.link("set", index=idx, state="up")


def _wait_ready(name: str, proc: dict) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if not _alive(proc):
            tail = Path(proc["log"]).read_text(errors="replace").strip().splitlines()[-5:]
            raise LabError(f"router {name} exited during start-up:\n  " + "\n  ".join(tail))
        with contextlib.suppress(ControlError, OSError, ValueError):
            request(proc["socket"], "ping", timeout=1.0)
            return
        time.sleep(0.1)
    raise LabError(f"router {name} did not answer on {proc['socket']} within {READY_TIMEOUT:.0f} s")


def lab_is_up(state: dict) -> bool:
    return (any(_alive(p) for p in state["routers"].values())
            or any(netns.exists(ns) for ns in state["namespaces"]))


def down(name: str) -> None:
    """Remove everything lab `name` made: processes, namespaces (devices go with them), state."""
    _require_root()
    state = _load_state(name)
    if state is None:
        raise LabError(f"no lab named {name} is known here (nothing in {state_dir(name)})")
    for procs in state["hosts"].values():
        for p in procs:
            _stop(p)
    for p in state["routers"].values():
        _stop(p)
    for ns in state["namespaces"]:
        netns.remove(ns)
    for p in state["routers"].values():
        sock = Path(p["socket"])
        with contextlib.suppress(FileNotFoundError):
            if not _answers_ping(p["socket"]):
                sock.unlink()
        # The router's default NFLOG directory, next to its socket (config.py).
        _rmtree(sock.with_name(sock.name.removesuffix(".sock") + "-nflog"))
    _rmtree(state_dir(name))


def _answers_ping(sock: str) -> bool:
    try:
        request(sock, "ping", timeout=0.5)
        return True
    except (ControlError, OSError, ValueError):
        return False


def _rmtree(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        for child in p.iterdir():
            _rmtree(child)
        p.rmdir()
    else:
        p.unlink(missing_ok=True)


def names() -> list[str]:
    if not LABS_DIR.is_dir():
        return []
    return sorted(p.name for p in LABS_DIR.iterdir() if (p / "state.json").exists())


def status(name: str | None = None) -> list[dict]:
    """What each lab has: routers and host commands alive or not, namespaces present or not."""
    wanted = [name] if name else names()
    out = []
    for n in wanted:
        state = _load_state(n)
        if state is None:
            raise LabError(f"no lab named {n} is known here")
        out.append({
            "name": n, "file": state["file"], "started": state["started"],
            "routers": {r: {"pid": p["pid"], "alive": _alive(p), "socket": p["socket"], "log": p["log"]}
                        for r, p in state["routers"].items()},
            "namespaces": {ns: netns.exists(ns) for ns in state["namespaces"]},
            "hosts": {h: [{"pid": p["pid"], "alive": _alive(p), "cmd": p["argv"][-1]} for p in procs]
                      for h, procs in state["hosts"].items()},
        })
    return out


def host_netns(name: str, host: str) -> str:
    state = _load_state(name)
    if state is None:
        raise LabError(f"no lab named {name} is up")
    cfg = load_lab(state["file"])
    if host not in cfg.hosts:
        raise LabError(f"lab {name} has no host {host}; hosts: {', '.join(sorted(cfg.hosts))}")
    return cfg.hosts[host].netns


def router_socket(name: str, router: str | None) -> str:
    state = _load_state(name)
    if state is None:
        raise LabError(f"no lab named {name} is up")
    routers = state["routers"]
    if router is None:
        if len(routers) != 1:
            raise LabError(f"lab {name} has routers {', '.join(sorted(routers))}; name one with --router")
        router = next(iter(routers))
    if router not in routers:
        raise LabError(f"lab {name} has no router {router}")
    return routers[router]["socket"]

