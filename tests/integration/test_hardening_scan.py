"""Hardening: nmap scans from the WAN host through the default lab's firewall.

netns/home.rules: FORWARD policy DROP; from wan0 only replies
(RELATED,ESTABLISHED) and the 8080 port forward (DNAT to h1:80, accepted as
--ctstate DNAT) pass.  The DNAT rule names no destination address, so port
8080 is forwarded whatever address on the WAN side it is sent to, as the
kernel would.  INPUT is ACCEPT: the router's own address answers like a Linux
host with nothing listening (RST for closed ports), not like a firewall.

Expected, per target (what the rules allow and nothing else):
* the LAN host 10.1.0.2 across the router: SYN scan finds 8080 open (the
  forward) and the rest filtered; FIN, Xmas and NULL probes are INVALID or
  NEW and dropped (open|filtered: no RST ever comes back); the ACK scan finds
  everything filtered except 8080, where tcp_loose picks the ACK up as a NEW
  connection the forward accepts and h1 answers it with a RST (unfiltered),
  as nf_conntrack_tcp_loose=1 does in the kernel.
* the router's WAN address: 8080 open, every other port closed; a FIN probe
  is INVALID, so not DNATed, and the router's own stack resets it: closed.
Each scan is limited to five ports, one retry and a 30 s host timeout.
"""
import re
import time

import pytest
from conftest import need

PORTS = "22,80,443,5201,8080"
LAN_HOST, WAN_ADDR = "10.1.0.2", "203.0.113.1"
SCAN_TIMEOUT = 60


def _scan(lab, kind: str, target: str) -> dict[int, str]:
    p = lab.run("web", "nmap", "-n", "-Pn", kind, "-p", PORTS, "--max-retries", "1",
                "--max-rtt-timeout", "200ms", "--host-timeout", "30s", "-oG", "-", target,
                timeout=SCAN_TIMEOUT)
    m = re.search(r"Ports: (.*?)(\t|$)", p.stdout, re.MULTILINE)
    assert m, p.stdout + p.stderr
    out = {}
    for item in m[1].split(","):
        port, state = item.strip().split("/")[:2]
        out[int(port)] = state
    return out


def _others(state: str, **ports: str) -> dict[int, str]:
    want = {int(p): state for p in PORTS.split(",")}
    want.update({int(k[1:]): v for k, v in ports.items()})
    return want


EXPECTED = {
    ("-sS", LAN_HOST): _others("filtered", p8080="open"),
    ("-sF", LAN_HOST): _others("open|filtered"),
    ("-sX", LAN_HOST): _others("open|filtered"),
    ("-sN", LAN_HOST): _others("open|filtered"),
    ("-sA", LAN_HOST): _others("filtered", p8080="unfiltered"),
    ("-sS", WAN_ADDR): _others("closed", p8080="open"),
    ("-sF", WAN_ADDR): _others("closed"),       # a FIN is INVALID, not forwarded: the router's RST
}


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """One lab for all the scans (each scan is stateless for the next)."""
    from conftest import LABS, lab_from
    need("nmap")
    with lab_from(LABS / "home.toml", tmp_path_factory.mktemp("scan")) as lab:
        lab.wait_listen("h1", 80)
        yield lab


@pytest.mark.parametrize("kind,target", list(EXPECTED), ids=[f"{k}-{t}" for k, t in EXPECTED])
def test_scan_shows_only_what_the_rules_allow(scanned, kind, target):
    t0 = time.monotonic()
    got = _scan(scanned, kind, target)
    assert got == EXPECTED[kind, target]
    assert time.monotonic() - t0 < SCAN_TIMEOUT


def test_stealth_probes_were_dropped_by_the_firewall_not_answered(scanned):
    """The FIN/Xmas/NULL probes to the LAN host reached FORWARD's LOG-and-drop tail."""
    from conftest import tunrouter
    _scan(scanned, "-sX", LAN_HOST)
    listing = tunrouter("iptables", "--lab", scanned.name, "-L", "FORWARD", "-n", "-v", "-x").stdout
    log = re.search(r"^\s+(\d+)\s+\d+ LOG", listing, re.MULTILINE)
    assert log and int(log[1]) >= 4, listing
