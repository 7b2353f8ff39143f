"""Network namespaces by name (/run/netns), through pyroute2."""
import contextlib
import os
import signal
import time

from pyroute2 import IPRoute, netns


def exists(name: str) -> bool:
    return name in netns.listnetns()


def create(name: str) -> None:
    """A new namespace with its loopback up."""
    netns.create(name)
    with inside(name), IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


def pids(name: str) -> list[int]:
    """Processes whose network namespace is name."""
    try:
        return [int(p) for p in netns.ns_pids().get(name, [])]
    except OSError:
        return []


def remove(name: str) -> None:
    """Kill what still runs in the namespace, then delete it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = pids(name)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 2.0
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = pids(name)
        if not left:
            break
    if exists(name):
        netns.remove(name)


@contextlib.contextmanager
def inside(name: str):
    """Run the block with this thread in namespace name (sockets opened there stay there)."""
    netns.pushns(name)
    try:
        yield
    finally:
        netns.popns()


def write_sysctl(key: str, value: str) -> None:
    """Set a net.* sysctl of the namespace this thread is in (call inside inside())."""
    with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
        f.write(value)
