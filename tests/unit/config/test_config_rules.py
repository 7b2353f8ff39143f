"""rules = "FILE" and [routers.NAME.log]: checked at load, errors name file, key and line."""
import json
import logging
import textwrap

import pytest

from tunrouter.config import ConfigError, build_router, load_lab
from tunrouter.driver.logsink import LogSink
from tunrouter.rules import Ctx, Hook
from tunrouter.rules.log import LogRecord
from tunrouter.rules.targets import Log

GOOD_LAB = """
[lab]
name = "t"
[hosts.a]
[hosts.b]
[routers.r]
[[routers.r.interfaces]]
name = "lan0"
host = "a"
address = "10.1.0.1/24"
host_address = "10.1.0.2/24"
[[routers.r.interfaces]]
name = "wan0"
host = "b"
address = "10.2.0.1/24"
host_address = "10.2.0.2/24"
"""


def write(tmp_path, text, name="lab.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p

RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
COMMIT
"""


def lab_with(tmp_path, extra, rules=RULES):
    (tmp_path / "home.rules").write_text(rules)
    return write(tmp_path, GOOD_LAB.replace('[routers.r]\n', '[routers.r]\n' + extra))


def test_rules_file_is_loaded_relative_to_the_toml(tmp_path):
    cfg = load_lab(lab_with(tmp_path, 'rules = "home.rules"\n')).routers["r"]
    assert cfg.rules.path == tmp_path / "home.rules"
    router = build_router(cfg)
    assert router.rules.save().count("-A FORWARD") == 1
    assert (cfg.log.file, cfg.log.format) == ("stderr", "kernel")


@pytest.mark.parametrize("rules,message", [
    (RULES.replace("conntrack --ctstate", "conntrak --ctstate"), 'line 5: unknown match "conntrak"'),
    (RULES.replace("COMMIT", "-A FORWARD -j SNAT --to-source 1.2.3.4\nCOMMIT"),
     "line 6: "),
    ("*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --dport 21 -j CT --helper sip\n"
     "COMMIT\n", 'line 3: CT: unknown helper "sip"'),
])
def test_a_bad_ruleset_is_a_config_error_with_file_and_line(tmp_path, rules, message):
    with pytest.raises(ConfigError) as e:
        load_lab(lab_with(tmp_path, 'rules = "home.rules"\n', rules))
    assert e.value.key == "routers.r.rules"
    assert f"{tmp_path / 'home.rules'}: {message}" in e.value.message


def test_missing_rules_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.rules: cannot read"):
        load_lab(lab_with(tmp_path, 'rules = "nope.rules"\n'))


@pytest.mark.parametrize("table,key,message", [
    ('format = "xml"', "routers.r.log.format", 'expected "kernel" or "json"'),
    ('file = ""', "routers.r.log.file", "expected a path"),
    ('level = 3', "routers.r.log.level", "unknown key"),
])
def test_bad_log_table(tmp_path, table, key, message):
    path = write(tmp_path, GOOD_LAB.replace("[[routers.r.interfaces]]",
                                            f"[routers.r.log]\n{table}\n[[routers.r.interfaces]]", 1))
    with pytest.raises(ConfigError) as e:
        load_lab(path)
    assert (e.value.key, message in e.value.message) == (key, True)


def test_log_file_relative_to_the_toml(tmp_path):
    path = write(tmp_path, GOOD_LAB.replace("[[routers.r.interfaces]]",
                                            '[routers.r.log]\nfile = "fw.log"\nformat = "json"\n'
                                            "[[routers.r.interfaces]]", 1))
    log = load_lab(path).routers["r"].log
    assert (log.file, log.format) == (str(tmp_path / "fw.log"), "json")


def _record(prefix="fw: "):
    from packets import H1, SRV, udp4

    from tunrouter.core.desc import parse

    ctx = Ctx(parse(udp4(H1, SRV, 1, 2), 0), 0, None, "lan0", "wan0", 1.0)
    ctx.hook = Hook.FORWARD
    return LogRecord(Log(prefix=prefix, level=6), ctx)


def test_sink_writes_kernel_lines_and_json(tmp_path):
    sink = LogSink(str(tmp_path / "a.log"), "kernel", "r1")
    sink.write([_record(), _record("x ")])
    lines = (tmp_path / "a.log").read_text().splitlines()
    assert lines[0].startswith("fw: IN=lan0 OUT=wan0 MAC= SRC=10.1.0.2 ") and lines[1][:5] == "x IN="
    sink = LogSink(str(tmp_path / "b.log"), "json", "r1")
    sink.write([_record()])
    rec = json.loads((tmp_path / "b.log").read_text())
    assert (rec["prefix"], rec["level"], rec["hook"], rec["src"]) == ("fw: ", 6, "FORWARD", "10.1.0.2")
    assert sink.written == 1


def test_sink_failure_is_counted_and_logged_once(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    sink = LogSink(str(blocker / "sub" / "x.log"), "kernel", "r1")
    with caplog.at_level(logging.ERROR, logger="tunrouter.log"):
        sink.write([_record()])
        sink.write([_record(), _record()])
    assert (sink.written, sink.lost) == (0, 3)
    assert len(caplog.records) == 1


def test_sink_full_disk(tmp_path, caplog):
    sink = LogSink("/dev/full", "kernel", "r1")
    with caplog.at_level(logging.ERROR, logger="tunrouter.log"):
        sink.write([_record()])
    assert sink.lost == 1 and len(caplog.records) == 1


def test_sink_syslog_kern_facility_with_the_rule_level(tmp_path, monkeypatch):
    import socket

    import tunrouter.driver.logsink as logsink

    path = str(tmp_path / "log.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    monkeypatch.setattr(logsink, "SYSLOG_SOCKET", path)
    sink = LogSink("syslog", "kernel", "r1")
    sink.write([_record()])
    msg = server.recv(4096).decode()
    server.close()
    assert msg.startswith("<6>tunrouter-r1: fw: IN=lan0 OUT=wan0 ")
    assert sink.written == 1
