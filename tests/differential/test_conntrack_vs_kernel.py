"""Same packets through Linux and through tunrouter: the same conntrack table.

Each scenario (scenarios.py) is played on a fresh topology (topology.py): the
hosts are muted, a probe proves the path both ways, the table is flushed, the
steps are sent, and the table is read and normalized (normalize.py).

* router=kernel: the live kernel table must equal the recording in
  scenarios.py, and the kernel must forward every step.
* router=tunrouter: its table and the steps it forwarded must equal the live
  kernel's from this run (played here if the kernel variant did not run first),
  then the recording, then the kernel's text byte for byte but for the numbers.
  Until `tunrouter conntrack -L/-F` exist these skip, naming the command.

Run as root:  .venv/bin/python -m pytest tests/differential -m netns
(add `-k 'not tunrouter'` for the kernel half, `-k udp_stream` for one scenario).
"""
import functools
from dataclasses import dataclass

import pytest

from normalize import TIMEOUT_CLASSES, Conn, normalize, side_by_side, text_shape
from scenarios import SCENARIOS, Scenario, Wait
from sender import Hosts
from topology import B_ADDR, HOST_DEVICE, in_ns, need, topology

pytestmark = pytest.mark.netns


@dataclass(frozen=True)
class Outcome:
    """What one router made of a scenario."""
    table: tuple[Conn, ...]
    delivered: tuple[bool, ...]      # per packet step (waits excluded): did it reach the other host
    lines: tuple[str, ...] = ()      # the conntrack -L text it printed


def play(kind: str, scenario: Scenario) -> Outcome:
    with topology(kind) as topo:
        topo.mute_hosts()
        with Hosts(topo.a, topo.b) as hosts:
            hosts.prime()
            topo.router.flush()        # the probes were tracked too
            delivered = hosts.play(scenario.steps)
            lines = topo.router.conntrack_list()
    return Outcome(tuple(normalize(lines)), delivered, tuple(lines))


@functools.cache
def kernel_outcome(scenario: Scenario) -> Outcome:
    """The live kernel's result, played once per run and shared by both variants."""
    return play("kernel", scenario)


def recorded(scenario: Scenario) -> Outcome:
    packets = [s for s in scenario.steps if not isinstance(s, Wait)]
    return Outcome(tuple(sorted(scenario.kernel, key=str)), (True,) * len(packets))


def differences(scenario: Scenario, want_title: str, want: Outcome, got_title: str, got: Outcome) -> str:
    packets = [s for s in scenario.steps if not isinstance(s, Wait)]
    fate = {True: "forwarded", False: "not forwarded"}
    steps = enumerate(zip(packets, want.delivered, got.delivered, strict=True), start=1)
    forwarding = [f"  step {i}: {p}: {want_title} {fate[w]}, {got_title} {fate[g]}"
                  for i, (p, w, g) in steps if w != g]
    return "\n".join([
        f"scenario {scenario.name}: {got_title} differs from {want_title}",
        side_by_side(want_title, list(want.table), got_title, list(got.table)),
        *(["forwarding differs:", *forwarding] if forwarding else []),
        f"{got_title} printed:", *(f"  {line}" for line in got.lines or ["(no entries)"]),
    ])


def assert_same(scenario: Scenario, want_title: str, want: Outcome, got_title: str, got: Outcome) -> None:
    assert (got.table, got.delivered) == (want.table, want.delivered), \
        differences(scenario, want_title, want, got_title, got)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
@pytest.mark.parametrize("router", ["kernel", "tunrouter"])
def test_conntrack_table(router, scenario):
    kernel = kernel_outcome(scenario)
    if router == "kernel":
        assert_same(scenario, "recorded (Linux 6.18)", recorded(scenario), "kernel", kernel)
        return
    got = play("tunrouter", scenario)
    assert_same(scenario, "kernel", kernel, "tunrouter", got)
    assert_same(scenario, "recorded (Linux 6.18)", recorded(scenario), "tunrouter", got)
    want_text, got_text = sorted(map(text_shape, kernel.lines)), sorted(map(text_shape, got.lines))
    assert got_text == want_text, ("same entries, different text:\nkernel:\n" + "\n".join(want_text)
                                   + "\ntunrouter:\n" + "\n".join(got_text))


@pytest.mark.parametrize("router", ["kernel", "tunrouter"])
def test_fragmented_ping_is_reassembled_and_answered(router):
    """4000 bytes of ICMP data leave A as three fragments; B must see one datagram and echo it."""
    need("ping")
    with topology(router) as topo:
        assert "mtu 1500 " in in_ns(topo.a, "ip", "link", "show", HOST_DEVICE).stdout
        p = in_ns(topo.a, "ping", "-c", "1", "-W", "3", "-M", "dont", "-s", "4000", B_ADDR, check=False)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert f"4008 bytes from {B_ADDR}" in out and "wrong data" not in out, out


def test_kernel_timeouts_are_the_classes():
    """The timeout classes normalize.py maps to are this kernel's defaults in a fresh namespace."""
    want = {name: seconds for classes in TIMEOUT_CLASSES.values() for name, seconds in classes.items()}
    with topology("kernel") as topo:
        live = {name: int(topo.router.sysctl(f"net.netfilter.nf_conntrack_{name}")) for name in want}
    assert live == want
