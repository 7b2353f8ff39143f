"""Router and lab files: the shipped labs load; each mistake names file, key and expectation."""
import pathlib
import textwrap

import pytest

from tunrouter.config import ConfigError, build_router, load_lab, load_router
from tunrouter.core.port import Kind

LABS = pathlib.Path(__file__).resolve().parents[3] / "netns"

GOOD_LAB = """
[lab]
name = "t"
[hosts.a]
[hosts.b]
run = ["sleep 1"]
[routers.r]
routes = ["198.51.100.0/24 via 10.2.0.9"]
[[routers.r.interfaces]]
name = "lan0"
host = "a"
address = "10.1.0.1/24"
host_address = "10.1.0.2/24"
gateway = true
[[routers.r.interfaces]]
name = "wan0"
kind = "tap"
host = "b"
address = "10.2.0.1/24"
host_address = "10.2.0.2/24"
"""


def write(tmp_path, text, name="lab.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


@pytest.mark.parametrize("lab", sorted(LABS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_labs_load_and_build(lab):
    cfg = load_lab(lab)
    for r in cfg.routers.values():
        router = build_router(r)
        assert len(router.ports) == len(r.interfaces)
    assert all(h.netns == f"{cfg.name}-{h.name}" for h in cfg.hosts.values())


def test_good_lab_fields(tmp_path):
    cfg = load_lab(write(tmp_path, GOOD_LAB))
    r = cfg.routers["r"]
    lan, wan = r.interfaces
    assert (lan.kind, lan.device, lan.netns, lan.address, lan.prefixlen, lan.mtu) == \
           (Kind.TUN, "lan0", "t-a", bytes([10, 1, 0, 1]), 24, 1500)
    assert wan.kind is Kind.TAP and len(wan.mac) == 6 and wan.mac[0] == 0x02
    assert str(r.control) == "/run/tunrouter/t-r.sock"
    assert cfg.hosts["b"].run == ["sleep 1"]


def test_offloads_are_on_for_tun_ports_unless_turned_off(tmp_path):
    lan, wan = load_lab(write(tmp_path, GOOD_LAB)).routers["r"].interfaces
    assert lan.offload is True and wan.offload is True         # TUN and TAP alike
    text = GOOD_LAB.replace('name = "lan0"', 'name = "lan0"\noffload = false')
    r = load_lab(write(tmp_path, text)).routers["r"]
    assert r.interfaces[0].offload is False
    assert [p.offload for p in build_router(r).ports] == [False, True]


def test_router_file_with_netns(tmp_path):
    p = write(tmp_path, """
        [routers.edge]
        control = "/tmp/edge.sock"
        [[routers.edge.interfaces]]
        name = "lan0"
        netns = "somewhere"
        address = "10.1.0.1/24"
    """, "router.toml")
    r = load_router(p)
    assert (r.name, r.interfaces[0].netns, str(r.control)) == ("edge", "somewhere", "/tmp/edge.sock")


def test_router_from_lab_file_by_name(tmp_path):
    assert load_router(write(tmp_path, GOOD_LAB), "r").name == "r"


BROKEN = [
    ("[lab\nname='x'", "", "not valid TOML"),
    ("[hosts.a]", "lab", "missing"),
    ("[lab]\nname='x'\n[hosts.a]\ncolour = 1", "hosts.a.colour", "unknown key"),
    ("[lab]\nname = 3\n[hosts.a]", "lab.name", "expected a string, got an integer"),
    ("[lab]\nname='bad name'\n[hosts.a]", "lab.name", "not a valid name"),
    ("[lab]\nname='x'", "hosts", "at least one"),
    ("[lab]\nname='x'\n[hosts.a]\nrun = [1]", "hosts.a.run[0]", "expected a string"),
]

IFACE = """
[lab]
name = "x"
[hosts.a]
[routers.r]
[[routers.r.interfaces]]
name = "lan0"
host = "a"
"""

BROKEN_IFACE = [
    ('address = "10.1.0.1"', "routers.r.interfaces[0].address", "with prefix length"),
    ('address = "10.1.0.300/24"', "routers.r.interfaces[0].address", "IPv4 address"),
    ('address = "10.1.0.1/32"', "routers.r.interfaces[0].address", "/32"),
    ('address = "10.1.0.1/24"\nkind = "tunnel"', "routers.r.interfaces[0].kind", '"tun" or "tap"'),
    ('address = "10.1.0.1/24"\nhost_address = "10.9.0.2/24"', "routers.r.interfaces[0].host_address", "not in the router's network"),
    ('address = "10.1.0.1/24"\nhost_address = "10.1.0.1/24"', "routers.r.interfaces[0].host_address", "router's own"),
    ('address = "10.1.0.1/24"\ngateway = true', "routers.r.interfaces[0].gateway", "needs host_address"),
    ('address = "10.1.0.1/24"\nmtu = 40', "routers.r.interfaces[0].mtu", "68 to 65535"),
    ('address = "10.1.0.1/24"\nmtu = "big"', "routers.r.interfaces[0].mtu", "expected an integer"),
    ('address = "10.1.0.1/24"\ndevice = "a-very-long-device-name"', "routers.r.interfaces[0].device", "interface name"),
    ('address = "10.1.0.1/24"\nbridge = "br0"', "routers.r.interfaces[0].bridge", "tap"),
    ('address = "10.1.0.1/24"\nmac = "02:00:00:00:00:01"', "routers.r.interfaces[0].mac", "tap"),
    ('address = "10.1.0.1/24"\nkind = "tap"\nmac = "01:00:00:00:00:01"', "routers.r.interfaces[0].mac", "multicast"),
    ('address = "10.1.0.1/24"\nnetns = "a"', "routers.r.interfaces[0].netns", "unknown key"),
]


@pytest.mark.parametrize("text, key, message", BROKEN, ids=[b[1] or "syntax" for b in BROKEN])
def test_broken_lab_files(tmp_path, text, key, message):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_lab(p)
    assert (e.value.path, e.value.key) == (str(p), key)
    assert message in e.value.message
    assert str(e.value).startswith(f"{p}: ")


@pytest.mark.parametrize("extra, key, message", BROKEN_IFACE, ids=[b[0].split("\n")[-1] for b in BROKEN_IFACE])
def test_broken_interfaces(tmp_path, extra, key, message):
    p = write(tmp_path, IFACE + extra)
    with pytest.raises(ConfigError) as e:
        load_lab(p)
    assert (e.value.key, message in e.value.message) == (key, True), e.value


def test_unknown_host(tmp_path):
    p = write(tmp_path, IFACE.replace('host = "a"', 'host = "zz"') + 'address = "10.1.0.1/24"')
    with pytest.raises(ConfigError, match=r"routers.r.interfaces\[0\].host: no host 'zz'"):
        load_lab(p)


def test_duplicate_port_names_and_addresses(tmp_path):
    two = IFACE + 'address = "10.1.0.1/24"\n' + IFACE.split("[routers.r]")[1].replace("[[", "[[", 1) + 'address = "10.2.0.1/24"'
    with pytest.raises(ConfigError, match=r"interfaces\[1\].name: port name 'lan0' is used twice"):
        load_lab(write(tmp_path, two))


@pytest.mark.parametrize("route, message", [
    ("10.9.0.0/16", "needs 'via GATEWAY' or 'dev PORT'"),
    ("10.9.0.1/16 via 10.1.0.9", "host bits set"),
    ("10.9.0.0/16 through 10.1.0.9", "expected 'via GATEWAY'"),
    ("10.9.0.0/16 dev eth9", "no interface named 'eth9'"),
    ("10.9.0.0/16 via 192.0.2.1", "not on a connected network"),
])
def test_bad_routes(tmp_path, route, message):
    p = write(tmp_path, IFACE.replace("[routers.r]", f'[routers.r]\nroutes = ["{route}"]') + 'address = "10.1.0.1/24"')
    with pytest.raises(ConfigError) as e:
        build_router(load_lab(p).routers["r"])
    assert (e.value.key, message in e.value.message) == ("routers.r.routes[0]", True), e.value


def test_router_file_needs_exactly_one_router(tmp_path):
    with pytest.raises(ConfigError, match="exactly one"):
        load_router(write(tmp_path, "[routers.a]\n[routers.b]\n", "r.toml"))


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_lab(tmp_path / "nope.toml")


def test_conntrack_and_ipfrag_knobs_by_kernel_name(tmp_path):
    text = IFACE + 'address = "10.1.0.1/24"\n[routers.r.conntrack]\nmax = 100\ntcp_loose = 0\n' \
        'tcp_timeout_established = 3600\n[routers.r.ipfrag]\ntime = 10\nhigh_thresh = 8000000\n'
    r = load_lab(write(tmp_path, text)).routers["r"]
    router = build_router(r)
    s = router.conntrack.settings
    assert (s.get("nf_conntrack_max"), s.get("nf_conntrack_tcp_loose"),
            s.get("nf_conntrack_tcp_timeout_established")) == (100, 0, 3600)
    assert (router.defrag.timeout, router.defrag.high_thresh) == (10, 8000000)


@pytest.mark.parametrize("table, message", [
    ("[routers.r.conntrack]\ntcp_lose = 1", "unknown conntrack setting"),
    ("[routers.r.conntrack]\nmax = -5", "out of range"),
    ("[routers.r.conntrack]\nmax = \"big\"", "expected an integer"),
    ("[routers.r.ipfrag]\ntime = 0", "positive"),
    ("[routers.r.ipfrag]\nlow_thresh = 10\nhigh_thresh = 5", "must not exceed"),
    ("[routers.r.ipfrag]\nmemory = 5", "unknown key"),
])
def test_bad_knobs(tmp_path, table, message):
    with pytest.raises(ConfigError) as e:
        load_lab(write(tmp_path, IFACE + 'address = "10.1.0.1/24"\n' + table))
    assert message in e.value.message and e.value.key.startswith("routers.r.")


SEGMENT_LAB = """
[lab]
name = "t"
[hosts.lan]
bridge = true
[hosts.srv]
segment = "lan"
address = "10.1.0.10/24"
gateway = "10.1.0.1"
"""


def test_host_on_a_segment(tmp_path):
    h = load_lab(write(tmp_path, SEGMENT_LAB)).hosts["srv"]
    assert (h.segment, h.address, h.gateway) == ("lan", "10.1.0.10/24", bytes([10, 1, 0, 1]))


@pytest.mark.parametrize("old, new, key, message", [
    ('bridge = true', 'bridge = false', "hosts.srv.segment", "not a host with bridge = true"),
    ('segment = "lan"', 'segment = "nowhere"', "hosts.srv.segment", "not a host with bridge = true"),
    ('address = "10.1.0.10/24"\n', '', "hosts.srv.address", "needs its address"),
    ('address = "10.1.0.10/24"', 'address = "10.1.0.10"', "hosts.srv.address", "prefix length"),
    ('gateway = "10.1.0.1"', 'gateway = "10.9.0.1"', "hosts.srv.gateway", "is not in 10.1.0.0/24"),
    ('segment = "lan"\n', '', "hosts.srv.address", "goes with segment"),
    ('[hosts.srv]', '[hosts.a-very-long-host-name]', "hosts.a-very-long-host-name.segment",
     "at most 15 characters"),
])
def test_broken_segment_hosts(tmp_path, old, new, key, message):
    p = write(tmp_path, SEGMENT_LAB.replace(old, new))
    with pytest.raises(ConfigError) as e:
        load_lab(p)
    assert (e.value.key, message in e.value.message) == (key, True), e.value


@pytest.mark.parametrize("listen, want", [('"127.0.0.1:9101"', ("127.0.0.1", 9101)),
                                          ('"0.0.0.0:80"', ("0.0.0.0", 80))])
def test_metrics_listen(tmp_path, listen, want):
    cfg = load_lab(write(tmp_path, GOOD_LAB + f"[routers.r.metrics]\nlisten = {listen}\n"))
    assert cfg.routers["r"].metrics == want


@pytest.mark.parametrize("listen", ['"127.0.0.1"', '"localhost:9101"', '"127.0.0.1:0"',
                                    '"127.0.0.1:70000"', "9101"])
def test_bad_metrics_listen(tmp_path, listen):
    with pytest.raises(ConfigError) as e:
        load_lab(write(tmp_path, GOOD_LAB + f"[routers.r.metrics]\nlisten = {listen}\n"))
    assert e.value.key == "routers.r.metrics.listen"
