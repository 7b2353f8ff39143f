"""Two hosts and a router between them, built twice: the kernel forwarding, or tunrouter.

    A (10.71.0.2/24, eth0) ── router ── B (10.72.0.2/24, eth0)
                 .1 = a0        b0 = .1

Namespaces get a fresh name per topology (`td<6 hex>-a`, `-b`, and `-r` for the
kernel's router) so runs never collide, and everything is removed in `finally`,
also when a test fails.  Both routers answer the same calls (`Router`), so a
scenario is written once and played against either.  Every subprocess has a
timeout: a wedged tool fails the test instead of hanging the suite.
"""
import contextlib
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

HOST_DEVICE = "eth0"                   # the device name inside A and B, for both routers
A_ADDR, B_ADDR = "10.71.0.2", "10.72.0.2"
A_GW, B_GW = "10.71.0.1", "10.72.0.1"
PREFIXLEN = 24
CMD_TIMEOUT = 15                       # seconds, for any one tool run

# Packets the harness crafts carry this mark; see MUTE_RULES.
HARNESS_MARK = 0x7D1

# What the kernel router loads in its namespace.  Conntrack hooks are registered
# in a namespace only once a rule there needs them, so the conntrack match is what
# turns tracking on.  Nothing is dropped: the policies accept and INVALID packets
# are accepted explicitly, which is what tunrouter does with no rules.  The TCP
# knobs stay at the kernel defaults (nf_conntrack_tcp_loose=1: mid-stream pick-up;
# nf_conntrack_tcp_be_liberal=0: out-of-window packets are INVALID, yet forwarded).
KERNEL_RULES = textwrap.dedent("""\
    *filter
    :INPUT ACCEPT [0:0]
    :FORWARD ACCEPT [0:0]
    :OUTPUT ACCEPT [0:0]
    -A FORWARD -m conntrack --ctstate INVALID -j ACCEPT
    COMMIT
""")

# Loaded in A and B for crafted scenarios.  The hosts' own stacks would answer
# crafted packets (RST for a segment to a closed port, port unreachable, echo
# reply) and those answers would move the router's conntrack state.  Only the
# harness's marked packets may leave; ARP is not filtered by iptables, so
# neighbour resolution still works.
MUTE_RULES = textwrap.dedent(f"""\
    *filter
    :INPUT ACCEPT [0:0]
    :FORWARD ACCEPT [0:0]
    :OUTPUT DROP [0:0]
    -A OUTPUT -m mark --mark {HARNESS_MARK:#x} -j ACCEPT
    COMMIT
""")


def nat_restore_text(nat_rules: Sequence[str]) -> str:
    """KERNEL_RULES plus a *nat table holding nat_rules (`-A CHAIN ...` lines), as one restore file.

    What tunrouter loads for a NAT scenario; the kernel gets KERNEL_RULES at
    start and the same rules one `iptables -t nat` command each.
    """
    chains = "".join(f":{c} ACCEPT [0:0]\n" for c in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"))
    return KERNEL_RULES + "*nat\n" + chains + "".join(f"{r}\n" for r in nat_rules) + "COMMIT\n"


def rule_lines(save_text: str) -> list[str]:
    """An iptables-save text without its comments and counters: what two rulesets must share."""
    return [re.sub(r" \[\d+:\d+\]$", "", line) for line in save_text.splitlines()
            if line and not line.startswith("#")]


def run(*cmd: str, timeout: float = CMD_TIMEOUT, check: bool = True,
        stdin: str | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, check=False, input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p


def in_ns(ns: str, *cmd: str, **kw) -> subprocess.CompletedProcess:
    return run("ip", "netns", "exec", ns, *cmd, **kw)


def need(*tools: str) -> None:
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip(f"needs {t}")


def add_namespace(ns: str) -> None:
    """A namespace with lo up and IPv6 off, so nothing but the scenario's IPv4 moves."""
    run("ip", "netns", "add", ns)
    in_ns(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
    run("ip", "-n", ns, "link", "set", "lo", "up")


def delete_namespace(ns: str) -> None:
    run("ip", "netns", "del", ns, check=False)


class Router(Protocol):
    """A router between A and B whose conntrack table can be read as `conntrack -L` lines."""

    def start(self) -> None: ...
    def conntrack_list(self) -> list[str]: ...
    def flush(self) -> None: ...
    def stop(self) -> None: ...
    def load_nat(self, rules: Sequence[str]) -> None: ...
    def save_nat(self) -> str: ...


class KernelRouter:
    """Linux forwarding in namespace R: veth pairs to A and B, ip_forward=1, KERNEL_RULES."""

    def __init__(self, prefix: str, a: str, b: str):
        self.ns, self.a, self.b = f"{prefix}-r", a, b

    def start(self) -> None:
        add_namespace(self.ns)
        for port, host, addr, gw in (("a0", self.a, A_ADDR, A_GW), ("b0", self.b, B_ADDR, B_GW)):
            run("ip", "-n", self.ns, "link", "add", port, "type", "veth",
                "peer", "name", HOST_DEVICE, "netns", host)
            run("ip", "-n", self.ns, "addr", "add", f"{gw}/{PREFIXLEN}", "dev", port)
            run("ip", "-n", self.ns, "link", "set", port, "up")
            run("ip", "-n", host, "addr", "add", f"{addr}/{PREFIXLEN}", "dev", HOST_DEVICE)
            run("ip", "-n", host, "link", "set", HOST_DEVICE, "up")
            run("ip", "-n", host, "route", "add", "default", "via", gw)
        in_ns(self.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        in_ns(self.ns, "iptables-restore", stdin=KERNEL_RULES)

    def conntrack_list(self) -> list[str]:
        return in_ns(self.ns, "conntrack", "-L").stdout.splitlines()

    def flush(self) -> None:
        in_ns(self.ns, "conntrack", "-F")

    def sysctl(self, name: str) -> str:
        return in_ns(self.ns, "sysctl", "-n", name).stdout.strip()

    def load_nat(self, rules: Sequence[str]) -> None:
        """Each rule as `iptables -t nat RULE` in R (see nat_restore_text for tunrouter's side)."""
        for rule in rules:
            in_ns(self.ns, "iptables", "-t", "nat", *shlex.split(rule))

    def save_nat(self) -> str:
        return in_ns(self.ns, "iptables-save", "-t", "nat").stdout

    def stop(self) -> None:
        delete_namespace(self.ns)      # takes the veth pairs with it


class TunrouterUnsupported(Exception):
    """The installed tunrouter does not know a subcommand the harness needs."""


class TunrouterRouter:
    """`tunrouter run` with one TUN device in A and one in B, driven through its CLI."""

    def __init__(self, prefix: str, a: str, b: str):
        self.a, self.b = a, b
        self.dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))   # short: a socket path has 108 bytes
        self.sock = self.dir / "control.sock"
        self.proc: subprocess.Popen | None = None

    def router_file(self) -> Path:
        ifaces = "".join(textwrap.dedent(f"""
            [[routers.diff.interfaces]]
            name = "{port}"
            device = "{HOST_DEVICE}"
            kind = "tun"
            netns = "{host}"
            address = "{gw}/{PREFIXLEN}"
            host_address = "{addr}/{PREFIXLEN}"
            gateway = true
            """) for port, host, addr, gw in (("a0", self.a, A_ADDR, A_GW), ("b0", self.b, B_ADDR, B_GW)))
        path = self.dir / "router.toml"
        path.write_text(f'[routers.diff]\ncontrol = "{self.sock}"\n{ifaces}')
        return path

    def start(self) -> None:
        with open(self.dir / "router.log", "w") as log:
            self.proc = subprocess.Popen([*self.cli(), "run", str(self.router_file())],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + CMD_TIMEOUT
        while not self.sock.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"tunrouter run did not come up:\n{self.log()}")
            time.sleep(0.05)
        # The socket is bound before the devices open; an answer means the loop runs.
        self.ctl("stats")

    def conntrack_list(self) -> list[str]:
        return self.ctl("conntrack", "-L").stdout.splitlines()

    def flush(self) -> None:
        self.ctl("conntrack", "-F")

    def load_nat(self, rules: Sequence[str]) -> None:
        """KERNEL_RULES and the nat rules as one iptables-restore file."""
        path = self.dir / "nat.rules"
        path.write_text(nat_restore_text(rules))
        self.ctl("iptables-restore", str(path))

    def save_nat(self) -> str:
        return self.ctl("iptables-save", "-t", "nat").stdout

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=CMD_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=CMD_TIMEOUT)
        shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def cli() -> list[str]:
        return [sys.executable, "-m", "tunrouter"]

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        """Run a tunrouter subcommand against this router; an argparse usage error means 'not built yet'."""
        cmd = [*self.cli(), *args, "--socket", str(self.sock)]
        p = run(*cmd, check=False)
        if p.returncode == 2 and "usage:" in p.stderr:
            raise TunrouterUnsupported(f"`tunrouter {' '.join(args)}` is not available yet: "
                                       f"{p.stderr.strip().splitlines()[-1]}")
        if p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}{p.stderr}\n"
                                 f"router log:\n{self.log()}")
        return p

    def log(self) -> str:
        path = self.dir / "router.log"
        return path.read_text() if path.exists() else ""


ROUTERS = {"kernel": KernelRouter, "tunrouter": TunrouterRouter}


@dataclass
class Topology:
    a: str                  # namespace of host A
    b: str                  # namespace of host B
    router: Router

    def mute_hosts(self) -> None:
        """From now on A and B send only what the harness crafts (see MUTE_RULES)."""
        for ns in (self.a, self.b):
            in_ns(ns, "iptables-restore", stdin=MUTE_RULES)


@contextlib.contextmanager
def topology(kind: str) -> Iterator[Topology]:
    """A, B and a started router of the given kind; all of it removed on the way out."""
    need("ip", "iptables-restore", "sysctl")
    if kind == "kernel":
        need("conntrack")
    prefix = "td" + secrets.token_hex(3)
    a, b = f"{prefix}-a", f"{prefix}-b"
    router = ROUTERS[kind](prefix, a, b)
    try:
        add_namespace(a)
        add_namespace(b)
        router.start()
        yield Topology(a, b, router)
    except TunrouterUnsupported as e:
        pytest.skip(str(e))
    finally:
        router.stop()
        delete_namespace(a)
        delete_namespace(b)
