"""`conntrack -L expect`, the helpers in `stats`, `helpers reload`: the CLI against a fake socket."""
import json

import pytest

from tunrouter.cli import conntrack as ctcli
from tunrouter.cli import helpers as helpercli
from tunrouter.cli import main as climain
from tunrouter.cli import show

LINE = ("299 proto=6 src=203.0.113.80 dst=10.1.0.2 sport=0 dport=50000 mask-src=255.255.255.255 "
        "mask-dst=255.255.255.255 sport=0 dport=65535 master-src=10.1.0.2 master-dst=203.0.113.80 "
        "sport=40000 dport=21 class=0 helper=ftp")


@pytest.fixture
def fake(monkeypatch):
    calls = []
    answers = {}

    def request(sock, cmd, timeout=5.0, **args):
        calls.append((sock, cmd, args))
        return answers[cmd]
    monkeypatch.setattr(ctcli, "request", request)
    monkeypatch.setattr("tunrouter.driver.control.request", request)
    return calls, answers


def test_conntrack_list_expect(fake, capsys):
    calls, answers = fake
    answers["ct_expect_list"] = [LINE]
    rc = climain.main(["conntrack", "-L", "expect", "--socket", "/x.sock"])
    out, err = capsys.readouterr()
    assert rc == 0 and out == LINE + "\n"
    assert err == f"{ctcli.SUMMARY}: 1 expectations have been shown.\n"
    assert calls == [("/x.sock", "ct_expect_list", {})]


def test_conntrack_expect_is_listed_or_watched(fake):
    with pytest.raises(SystemExit, match=r"listed \(-L expect\) or watched \(-E expect\)"):
        climain.main(["conntrack", "-F", "expect", "--socket", "/x.sock"])
    with pytest.raises(SystemExit, match="no filters"):
        climain.main(["conntrack", "-L", "expect", "-p", "tcp", "--socket", "/x.sock"])


def test_conntrack_table_default_is_still_conntrack(fake, capsys):
    _, answers = fake
    answers["ct_list"] = []
    assert climain.main(["conntrack", "-L", "--socket", "/x.sock"]) == 0
    assert "0 flow entries" in capsys.readouterr().err


def test_helpers_reload_cli(fake, capsys):
    calls, answers = fake
    answers["helpers_reload"] = {"helpers": ["ftp", "toy"], "reloaded_modules": ["toy_mod"],
                                 "removed": [], "connections": 2, "detached": 0}
    assert climain.main(["helpers", "reload", "--socket", "/x.sock"]) == 0
    out = capsys.readouterr().out
    assert "helpers: ftp, toy" in out and "modules reloaded: toy_mod" in out
    assert "connections given the new helpers: 2" in out
    assert calls[0][1] == "helpers_reload"


STATS = {
    "ports": {"lan0": {"rx_packets": 1, "rx_bytes": 2, "tx_packets": 3, "tx_bytes": 4}},
    "forwarded": 1, "local": 0, "arp": 0, "icmp_sent": 0, "icmp_ratelimited": 0, "fragments_out": 0,
    "conntrack": {"entries": 3, "max": 65536},
    "reassembly": {"ReasmReqds": 0, "ReasmOKs": 0, "ReasmFails": 0, "ReasmTimeout": 0, "queues": 0,
                   "mem": 0},
    "drops": {"helper": 1, "helper-fault": 3},
    "helpers": {"loaded": ["ftp", "toy"], "faults": {"toy": 3}, "disabled": ["toy"],
                "expectations": 2},
}


def test_stats_shows_helpers(fake, capsys):
    _, answers = fake
    answers["stats"], answers["ping"] = STATS, {"router": "r1", "pid": 7}
    assert climain.main(["stats", "--socket", "/x.sock"]) == 0
    out = capsys.readouterr().out
    assert "Helpers" in out
    assert any(line.split() == ["expectations", "2"] for line in out.splitlines())
    assert any(line.split() == ["toy", "switched", "off", "3", "faults"] for line in out.splitlines())
    assert any(line.split() == ["ftp", "on", "0", "faults"] for line in out.splitlines())
    assert any(line.split() == ["helper-fault", "3"] for line in out.splitlines())
    assert climain.main(["stats", "--json", "--socket", "/x.sock"]) == 0
    assert json.loads(capsys.readouterr().out)["helpers"]["disabled"] == ["toy"]


def test_stats_without_helpers_key_still_prints():
    s = dict(STATS)
    del s["helpers"]
    assert "Helpers" not in show.stats("r1", s)


def test_helper_new_refuses_bad_names_and_existing_dirs(tmp_path):
    with pytest.raises(ValueError, match="not a helper name"):
        helpercli.new_helper("Bad-Name", tmp_path)
    with pytest.raises(ValueError, match="not a helper name"):
        helpercli.new_helper("class", tmp_path)
    (tmp_path / "tunrouter-helper-x").mkdir()
    with pytest.raises(ValueError, match="exists"):
        helpercli.new_helper("x", tmp_path)
