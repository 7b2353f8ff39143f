"""NAT in real labs: real programs through MASQUERADE, DNAT and SNAT, checked by what arrives.

home.toml masquerades its LANs out of wan0 (home.rules); the chain lab gets
a ruleset here that masquerades r1's transit side, and r2 is given no route
back to h1's LAN, so nothing returns unless r1 translates it.
"""
import hashlib
import re
import subprocess
import time

import pytest
from conftest import LABS, lab_from, need, tunrouter

pytestmark = pytest.mark.netns

MASQ_R1 = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
"""


def conntrack(lab, *args, router="r1") -> list[dict]:
    """`tunrouter conntrack -L` on a router, each entry's protocol and its two tuples."""
    out = tunrouter("conntrack", "--lab", lab.name, "--router", router, "-L", *args).stdout
    entries = []
    for line in out.splitlines():
        pairs = re.findall(r"\b(src|dst|sport|dport|type|code|id)=(\S+)", line)
        n = len(pairs) // 2
        entries.append({"proto": line.split()[0], "line": line,
                        "orig": dict(pairs[:n]), "reply": dict(pairs[n:])})
    return entries


# -- 1. many connections through MASQUERADE, some from the same port ---------

def test_parallel_downloads_through_masquerade_remap_clashing_ports(home, tmp_path):
    need("curl")
    home.wait_listen("web", 80)
    blob = (home.state_dir / "hosts" / "web" / "blob.bin").read_bytes()
    want = hashlib.md5(blob).hexdigest()
    shared = [40001, 40002, 40003, 40004]           # the same source port on h1 and h2
    jobs = []                                       # (host, local port or None, output file)
    for host in ("h1", "h2"):
        jobs += [(host, p, tmp_path / f"{host}-{p}.bin") for p in shared]
        jobs += [(host, None, tmp_path / f"{host}-any{i}.bin") for i in range(11)]
    procs = []
    for host, port, out in jobs:
        cmd = ["ip", "netns", "exec", home.ns(host), "curl", "-sS", "--max-time", "40",
               "-o", str(out), "-w", "%{http_code} %{local_port}"]
        if port is not None:
            cmd += ["--local-port", str(port)]
        procs.append(subprocess.Popen(cmd + ["http://203.0.113.80/blob.bin"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=60)
            results.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert len(results) == 30
    for (host, port, path), (rc, w, err) in zip(jobs, results):
        assert rc == 0 and w.split()[0] == "200", (host, port, rc, w, err)
        if port is not None:
            assert w.split()[1] == str(port), (host, port, w)
        assert hashlib.md5(path.read_bytes()).hexdigest() == want, (host, port, path.stat().st_size)

    entries = [e for e in conntrack(home, "-p", "tcp")
               if e["orig"]["dst"] == "203.0.113.80" and e["orig"]["dport"] == "80"]
    assert len(entries) == 30, "\n".join(e["line"] for e in entries)
    replies = [tuple(e["reply"].values()) for e in entries]
    assert len(set(replies)) == 30, "two connections share a reply tuple"
    for e in entries:                               # every one masqueraded behind wan0
        assert e["reply"]["src"] == "203.0.113.80" and e["reply"]["dst"] == "203.0.113.1", e["line"]
    for port in shared:
        pair = [e for e in entries if e["orig"]["sport"] == str(port)]
        assert sorted(e["orig"]["src"] for e in pair) == ["10.1.0.2", "10.2.0.2"], pair
        dports = sorted(int(e["reply"]["dport"]) for e in pair)
        # one keeps its port, the other is moved (within 1024-65535, the port's class)
        assert port in dports and dports[0] != dports[1], [e["line"] for e in pair]
        other = dports[1] if dports[0] == port else dports[0]
        assert 1024 <= other <= 65535


# -- 2. DNS through masquerade, the stateful way ------------------------------

def test_dns_query_and_reply_through_masquerade_and_stateful_rules(home, tmp_path):
    need("dig")
    dnsmasq = "/usr/sbin/dnsmasq"
    need(dnsmasq)
    pid = tmp_path / "dnsmasq.pid"
    server = subprocess.Popen(
        ["ip", "netns", "exec", home.ns("web"), dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null",
         "--no-resolv", "--no-hosts", "--address=/lab.example/198.51.100.7",
         "--listen-address=203.0.113.80", "--bind-interfaces", f"--pid-file={pid}",
         "--log-facility=-"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 10
        while not home.run("web", "ss", "-Hlun", "sport = :53").stdout.strip():
            assert server.poll() is None, server.communicate()[0]
            assert time.monotonic() < deadline, "dnsmasq does not listen"
            time.sleep(0.1)
        p = home.run("h1", "dig", "+short", "+time=2", "+tries=2", "@203.0.113.80", "lab.example")
        assert p.stdout.split() == ["198.51.100.7"], p.stdout + p.stderr
    finally:
        server.kill()
        server.wait(timeout=10)
    udp = [e for e in conntrack(home, "-p", "udp") if e["orig"]["dport"] == "53"]
    assert len(udp) == 1, [e["line"] for e in udp]
    e = udp[0]
    assert (e["orig"]["src"], e["orig"]["dst"]) == ("10.1.0.2", "203.0.113.80"), e["line"]
    assert (e["reply"]["src"], e["reply"]["dst"], e["reply"]["sport"]) == \
        ("203.0.113.80", "203.0.113.1", "53"), e["line"]
    assert "[UNREPLIED]" not in e["line"]
    # The reply came in through FORWARD's first rule (policy DROP): RELATED,ESTABLISHED.
    listing = tunrouter("iptables", "--lab", home.name, "-L", "FORWARD", "-n", "-v", "-x").stdout
    first = re.search(r"^\s+(\d+)\s+\d+ ACCEPT .* ctstate RELATED,ESTABLISHED$", listing, re.MULTILINE)
    assert first and int(first[1]) >= 1, listing


# -- 3, 4. traceroute and path MTU discovery through r1's masquerade -----------

@pytest.fixture
def masq_chain(tmp_path):
    """chain.toml with r1 masquerading out of wan0, r2 with no route back to 10.1.0.0/24,
    and a 1280-byte MTU on r2's link to srv."""
    (tmp_path / "r1.rules").write_text(MASQ_R1)

    def edit(text):
        text = text.replace("[routers.r1]\n", '[routers.r1]\nrules = "r1.rules"\n', 1)
        assert 'routes = ["10.1.0.0/24 via 192.0.2.1"]\n' in text
        text = text.replace('routes = ["10.1.0.0/24 via 192.0.2.1"]\n', "")
        return text.replace('address = "198.51.100.1/24"\n', 'address = "198.51.100.1/24"\nmtu = 1280\n')
    with lab_from(LABS / "chain.toml", tmp_path, edit=edit) as lab:
        yield lab


def test_traceroute_through_masquerade_lists_the_hops(masq_chain):
    need("traceroute")
    out = masq_chain.run("h1", "traceroute", "-n", "-q", "1", "-w", "2", "-m", "5",
                         "198.51.100.80", timeout=40).stdout
    hops = re.findall(r"^\s*\d+\s+(\S+)", out, re.MULTILINE)
    assert hops == ["10.1.0.1", "192.0.2.2", "198.51.100.80"], out
    probes = [e for e in conntrack(masq_chain, "-p", "udp") if e["orig"]["dst"] == "198.51.100.80"]
    assert probes and all(e["reply"]["dst"] == "192.0.2.1" for e in probes), \
        [e["line"] for e in probes]


def test_path_mtu_discovery_through_masquerade(masq_chain):
    need("tracepath")
    lab = masq_chain
    p = lab.run("h1", "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1400", "198.51.100.80", check=False)
    assert p.returncode != 0, p.stdout
    assert re.search(r"From 192\.0\.2\.2 icmp_seq=1 Frag needed and DF set \(mtu = 1280\)", p.stdout), \
        p.stdout + p.stderr
    icmp = conntrack(lab, "-p", "icmp")
    assert any(e["reply"]["dst"] == "192.0.2.1" for e in icmp), [e["line"] for e in icmp]
    # Forget the learnt MTU, so tracepath has to find it again through the NAT.
    lab.run("h1", "ip", "route", "flush", "cache")
    assert "mtu" not in lab.run("h1", "ip", "route", "get", "198.51.100.80").stdout
    out = lab.run("h1", "tracepath", "-n", "198.51.100.80", timeout=60).stdout
    assert re.search(r"^\s*\d+:\s+192\.0\.2\.2\s.*pmtu 1280$", out, re.MULTILINE), out
    assert re.search(r"^\s*3:\s+198\.51\.100\.80\s.*reached$", out, re.MULTILINE), out
    assert re.search(r"Resume: pmtu 1280 hops 3 back 3", out), out
    # and a full-size packet now fits the path
    lab.run("h1", "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1252", "198.51.100.80")


# -- 5. hairpin NAT: a LAN client reaching a LAN server by the public address --

HAIRPIN_LAB = """# r1's lan0 is one Ethernet segment (br0 in the lan namespace) with srv and cli on it.
[lab]
name = "hairpin"

[hosts.lan]
bridge = true

[hosts.srv]
segment = "lan"
address = "10.1.0.10/24"
gateway = "10.1.0.1"
run = ["echo 'srv says hello' > index.html && exec python3 -m http.server 80 --bind 0.0.0.0"]

[hosts.cli]
segment = "lan"
address = "10.1.0.20/24"
gateway = "10.1.0.1"

[hosts.wan]

[routers.r1]
rules = "hairpin.rules"

[[routers.r1.interfaces]]
name = "lan0"
device = "r1"
kind = "tap"
host = "lan"
bridge = "br0"
address = "10.1.0.1/24"

[[routers.r1.interfaces]]
name = "wan0"
device = "eth0"
host = "wan"
address = "203.0.113.1/24"
host_address = "203.0.113.80/24"
gateway = true
"""

HAIRPIN_RULES = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 203.0.113.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.0.10:80
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
"""
# The hairpin rule: what the LAN sends to the server through the router
# leaves with the router's address, so the server's reply comes back through it.
HAIRPIN_SNAT = "-A POSTROUTING -s 10.1.0.0/24 -d 10.1.0.10/32 -p tcp -m tcp --dport 80 -j MASQUERADE\n"


def hairpin_scenario(lab, tmp_path):
    """The client fails by the public address until the hairpin rule; the WAN always gets in."""
    lab.wait_listen("srv", 80)

    def get(host):
        return lab.run(host, "curl", "-sS", "--max-time", "3", "http://203.0.113.1:8080/", check=False)

    def from_cli():
        return [e for e in conntrack(lab, "-p", "tcp", "--dport", "8080") if e["orig"]["src"] == "10.1.0.20"]

    assert get("wan").stdout == "srv says hello\n"
    # Without the hairpin rule: the server answers cli straight from 10.1.0.10 on
    # the segment, which cli does not take for its connection to 203.0.113.1.
    p = get("cli")
    assert p.returncode == 28, (p.returncode, p.stdout, p.stderr)     # timed out
    [e] = from_cli()
    assert e["reply"]["src"] == "10.1.0.10" and e["reply"]["dst"] == "10.1.0.20", e["line"]
    assert "[UNREPLIED]" in e["line"], e["line"]                      # the reply bypassed r1
    f = tmp_path / "hairpin-on.rules"
    f.write_text(HAIRPIN_RULES.replace("COMMIT\n", HAIRPIN_SNAT + "COMMIT\n"))
    tunrouter("iptables-restore", "--lab", lab.name, str(f))
    p = get("cli")
    assert (p.returncode, p.stdout) == (0, "srv says hello\n"), p.stderr
    hairpinned = [e for e in from_cli() if e["reply"]["dst"] == "10.1.0.1"]
    assert len(hairpinned) == 1 and "[ASSURED]" in hairpinned[0]["line"], \
        [e["line"] for e in from_cli()]
    assert get("wan").stdout == "srv says hello\n"


def test_hairpin_nat(tmp_path):
    """The tutorial's hairpin: srv and cli share r1's lan0 segment (hosts with segment = "lan")."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "hairpin.toml").write_text(HAIRPIN_LAB)
    (src / "hairpin.rules").write_text(HAIRPIN_RULES)
    with lab_from(src / "hairpin.toml", tmp_path) as lab:
        hairpin_scenario(lab, tmp_path)
