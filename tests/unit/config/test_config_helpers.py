"""[routers.NAME.helpers]: settings, errors naming file and key, third-party helpers."""
import textwrap

import pytest
from plugins import install_helper_dist, toy_source

from tunrouter.config import ConfigError, build_router, load_router
from tunrouter.helpers import HelperSettings

ROUTER = """
[routers.edge]
control = "/tmp/edge.sock"
[[routers.edge.interfaces]]
name = "lan0"
netns = "a"
address = "10.1.0.1/24"
"""


def write(tmp_path, extra: str = "", name: str = "router.toml"):
    p = tmp_path / name
    p.write_text(ROUTER + textwrap.dedent(extra))
    return p


def test_defaults_without_a_table(tmp_path):
    cfg = load_router(write(tmp_path))
    assert cfg.helpers == HelperSettings()
    router = build_router(cfg)
    assert {"ftp", "tftp"} <= set(router.helpers)
    assert router.guard.on_fault == "accept"


def test_every_key(tmp_path):
    cfg = load_router(write(tmp_path, """
        [routers.edge.helpers]
        auto = true
        ports = { ftp = [21, 2121] }
        on_fault = "drop"
        max_faults = 2
        fault_window = 10
        budget_ms = 20
    """))
    assert cfg.helpers == HelperSettings(True, {"ftp": (21, 2121)}, "drop", 2, 10.0, 0.02)
    router = build_router(cfg)
    g = router.guard
    assert (g.on_fault, g.max_faults, g.window, g.budget) == ("drop", 2, 10.0, 0.02)
    assert router._auto[(6, 2121)] is router.helpers["ftp"]


@pytest.mark.parametrize("table, key, message", [
    ("auto = 1", "auto", "expected a boolean, got an integer"),
    ('on_fault = "reject"', "on_fault", 'expected "accept" or "drop", got \'reject\''),
    ("max_faults = 0", "max_faults", "expected 1 or more, got 0"),
    ("max_faults = 1.5", "max_faults", "expected an integer, got a float"),
    ("fault_window = 0", "fault_window", "expected a positive number, got 0"),
    ("fault_window = true", "fault_window", "expected a number, got a boolean"),
    ("budget_ms = -1.0", "budget_ms", "expected a positive number, got -1.0"),
    ('budget_ms = "5"', "budget_ms", "expected a number, got a string"),
    ("ports = { nope = [1] }", "ports.nope", "no helper named 'nope'; helpers: "),
    ("ports = { ftp = 21 }", "ports.ftp", "expected an array of ports, got an integer"),
    ("ports = { ftp = [0] }", "ports.ftp[0]", "expected a port number (1 to 65535), got 0"),
    ("ports = [21]", "ports", "expected a table, got an array"),
    ("budget = 5", "budget", "unknown key; expected one of: "),
])
def test_bad_keys_name_file_and_key(tmp_path, table, key, message):
    p = write(tmp_path, "[routers.edge.helpers]\n" + table + "\n")
    with pytest.raises(ConfigError) as e:
        load_router(p)
    assert e.value.path == str(p)
    assert e.value.key == f"routers.edge.helpers.{key}"
    assert message in e.value.message


def test_helpers_must_be_a_table(tmp_path):
    p = tmp_path / "inline.toml"
    p.write_text(ROUTER.replace('control = "/tmp/edge.sock"', 'control = "/tmp/edge.sock"\nhelpers = "ftp"'))
    with pytest.raises(ConfigError, match=r"routers.edge.helpers: expected a table, got a string"):
        load_router(p)


def test_third_party_helper_gets_built_and_parses_in_rules(tmp_path, monkeypatch):
    install_helper_dist(tmp_path / "site", monkeypatch, {"toycfg": "toycfg_mod:Toy"},
                        {"toycfg_mod": toy_source("toycfg")})
    (tmp_path / "rules.v4").write_text(
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A PREROUTING -p tcp --dport 7777 -j CT --helper toycfg\nCOMMIT\n")
    p = tmp_path / "withrules.toml"
    p.write_text(ROUTER.replace('control = "/tmp/edge.sock"', 'control = "/tmp/edge.sock"\nrules = "rules.v4"')
                 + "[routers.edge.helpers]\nports = { toycfg = [7778] }\n")
    cfg = load_router(p)
    assert cfg.helpers.ports == {"toycfg": (7778,)}
    router = build_router(cfg)
    assert type(router.helpers["toycfg"]).__name__ == "Toy"
    assert router.rules is not None


def test_broken_entry_point_is_a_config_error(tmp_path, monkeypatch):
    install_helper_dist(tmp_path / "site", monkeypatch, {"broken": "broken_mod:Nope"},
                        {"broken_mod": "raise ImportError('no such thing')\n"}, dist="broken_dist")
    p = write(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_router(p)
    assert e.value.key == "routers.edge.helpers"
    assert "helper 'broken'" in e.value.message and "cannot load" in e.value.message


def test_entry_point_that_is_not_a_helper(tmp_path, monkeypatch):
    install_helper_dist(tmp_path / "site", monkeypatch, {"notone": "notone_mod:Thing"},
                        {"notone_mod": "class Thing:\n    pass\n"}, dist="notone_dist")
    with pytest.raises(ConfigError, match="is not a Helper subclass"):
        load_router(write(tmp_path))
