"""Control verbs for helpers: ct_expect_list, the helpers' stats, helpers_reload."""
import sys

import pytest
from packets import H1, LAN_TUN, SRV, WAN, make_router, tcp4
from plugins import install_helper_dist, toy_source

from tunrouter.core.hooks import engine_for
from tunrouter.core.port import PortSpec
from tunrouter.core.router import Router
from tunrouter.driver.ctl_conntrack import conntrack_handlers
from tunrouter.driver.ctl_helpers import helper_state, helpers_handlers
from tunrouter.helpers import HelperSettings
from tunrouter.helpers.registry import available

RAW = ("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
       "-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp\nCOMMIT\n")


def ftp_session(r: Router, t: float = 0.0) -> None:
    """An FTP control connection H1 -> SRV:21 announcing PORT 50000."""
    r.process(LAN_TUN, tcp4(H1, SRV, 40000, 21, "S", seq=1000), t)
    r.process(WAN, tcp4(SRV, H1, 21, 40000, "SA", seq=5000, ack=1001), t + 0.1)
    r.process(LAN_TUN, tcp4(H1, SRV, 40000, 21, "A", seq=1001, ack=5001), t + 0.2)
    r.process(LAN_TUN, tcp4(H1, SRV, 40000, 21, "PA", b"USER a\r\n", seq=1001, ack=5001), t + 0.3)
    r.process(LAN_TUN, tcp4(H1, SRV, 40000, 21, "PA", b"PORT 10,1,0,2,195,80\r\n",
                            seq=1009, ack=5001), t + 0.4)


def test_ct_expect_list_prints_expect_lines():
    r = make_router()
    r.set_rules(engine_for(RAW))
    ftp_session(r)
    handlers = conntrack_handlers(r.conntrack, lambda: 1.0)
    line, = handlers["ct_expect_list"]({})
    assert line.startswith("299 proto=6 src=203.0.113.80 dst=10.1.0.2 sport=0 dport=50000 ")
    assert line.endswith("class=0 helper=ftp")
    assert helper_state(r)["expectations"] == 1


def test_helper_state_in_stats():
    r = make_router()
    r.guard.faults["ftp"] += 2
    r.guard.disabled.add("ftp")
    s = helpers_handlers(r)["helpers"]({})
    assert s == {"loaded": sorted(r.helpers), "faults": {"ftp": 2}, "disabled": ["ftp"],
                 "expectations": 0}


V2 = '''
from tunrouter.helpers.base import TCP, Helper


class Toy(Helper):
    name, proto, ports = "{name}", TCP, (7777,)
    VERSION = 2

    def new_state(self):
        return "v2 state"

    def help(self, pkt):
        return None
'''


def _router_with_entry_points() -> Router:
    base = make_router()
    return Router([PortSpec(p.index, p.name, p.kind, p.address, p.prefixlen, p.mtu, p.mac)
                   for p in base.ports],
                  helpers={n: c() for n, c in available().items()},
                  helper_settings=HelperSettings(auto=True))


def test_helpers_reload_swaps_third_party_helpers_and_keeps_connections(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    site = install_helper_dist(tmp_path / "site", monkeypatch, {"toyrl": "toyrl_mod:Toy"},
                               {"toyrl_mod": toy_source("toyrl")})
    r = _router_with_entry_points()
    r.set_rules(engine_for(RAW))
    ftp_session(r)
    r.process(LAN_TUN, tcp4(H1, SRV, 41000, 7777, "S", seq=1), 0.5)
    old_toy = r.helpers["toyrl"]
    ftp_obj = r.helpers["ftp"]
    by_helper = {ct.help.helper.name: ct for ct in r.conntrack.entries() if ct.help and ct.help.helper}
    toy_ct, ftp_ct = by_helper["toyrl"], by_helper["ftp"]
    ftp_state = ftp_ct.help.state
    assert toy_ct.help.state == {"seen": 0}
    r.guard.disabled.update({"toyrl", "ftp"})
    (site / "toyrl_mod.py").write_text(V2.format(name="toyrl"))
    n_conns = r.conntrack.count()

    result = helpers_handlers(r)["helpers_reload"]({})

    assert "toyrl_mod" in result["reloaded_modules"]
    new_toy = r.helpers["toyrl"]
    assert new_toy is not old_toy and type(new_toy).VERSION == 2
    assert r.helpers["ftp"] is ftp_obj                  # a built-in: the same object
    assert toy_ct.help.helper is new_toy and toy_ct.help.state == "v2 state"
    assert ftp_ct.help.helper is ftp_obj and ftp_ct.help.state is ftp_state
    assert r.guard.disabled == set()
    assert r.conntrack.count() == n_conns and r.conntrack.expects.count == 1
    assert r._auto[(6, 7777)] is new_toy
    assert result["connections"] == 1 and result["detached"] == 0


def test_helpers_reload_that_fails_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    site = install_helper_dist(tmp_path / "site", monkeypatch, {"toybad": "toybad_mod:Toy"},
                               {"toybad_mod": toy_source("toybad")})
    r = _router_with_entry_points()
    before = dict(r.helpers)
    (site / "toybad_mod.py").write_text("this is not python (\n")
    with pytest.raises(ValueError, match="helpers not reloaded: module toybad_mod: cannot reload"):
        helpers_handlers(r)["helpers_reload"]({})
    assert r.helpers == before


def test_helpers_reload_keeps_state_when_the_class_is_unchanged():
    r = make_router()
    r.set_rules(engine_for(RAW))
    ftp_session(r)
    ct, = [c for c in r.conntrack.entries() if c.help and c.help.helper]
    state = ct.help.state
    result = helpers_handlers(r)["helpers_reload"]({})
    assert ct.help.state is state and ct.help.helper is r.helpers["ftp"]
    assert result["connections"] == 0 and "ftp" in result["helpers"]
