"""`tunrouter replay` and tunrouter.replay: a capture through the core, offline."""
import subprocess
import sys
import textwrap

import pytest
from scapy.all import ARP, IP, TCP, UDP, CookedLinux, Ether, Raw, raw, wrpcap

from tunrouter.cli import helpers as helpercli
from tunrouter.cli import main as climain
from tunrouter.core.hooks import engine_for
from tunrouter.helpers import HelperSettings
from tunrouter.helpers.ftp import Ftp
from tunrouter.replay import LAN, WAN, Record, Replay, payload_diff, sides

C, S = "10.0.0.2", "192.0.2.10"


def ftp_packets(server_sees: str = C):
    """An FTP control session from C to S: handshake, USER, PORT; S answers server_sees."""
    c, s = 1000, 5000
    return [
        IP(src=C, dst=S) / TCP(sport=40000, dport=21, flags="S", seq=c),
        IP(src=S, dst=server_sees) / TCP(sport=21, dport=40000, flags="SA", seq=s, ack=c + 1),
        IP(src=C, dst=S) / TCP(sport=40000, dport=21, flags="A", seq=c + 1, ack=s + 1),
        IP(src=C, dst=S) / TCP(sport=40000, dport=21, flags="PA", seq=c + 1, ack=s + 1) / Raw(b"USER a\r\n"),
        IP(src=C, dst=S) / TCP(sport=40000, dport=21, flags="PA", seq=c + 9, ack=s + 1)
        / Raw(b"PORT 10,0,0,2,195,80\r\n"),
        IP(src=S, dst=server_sees) / TCP(sport=20, dport=50000, flags="S", seq=9000),
    ]


def records(pkts):
    return [Record(1000.0 + i, raw(p)) for i, p in enumerate(pkts)]


def ftp_auto():
    return {"ftp": Ftp()}, HelperSettings(auto=True)


def test_sides_follow_the_conversations():
    recs = records([IP(src="1.1.1.1", dst="2.2.2.2"), IP(src="2.2.2.2", dst="3.3.3.3"),
                    IP(src="4.4.4.4", dst="1.1.1.1")])
    side = sides(recs)
    assert side[bytes([1, 1, 1, 1])] == LAN and side[bytes([2, 2, 2, 2])] == WAN
    assert side[bytes([3, 3, 3, 3])] == LAN and side[bytes([4, 4, 4, 4])] == WAN


def test_ftp_replay_states_and_expectation():
    helpers, hs = ftp_auto()
    steps = Replay(records(ftp_packets()), helpers, hs).run()
    assert [s.ctstate for s in steps] == ["NEW", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED",
                                          "ESTABLISHED", "RELATED"]
    assert [s.port for s in steps] == ["lan0", "wan0", "lan0", "lan0", "lan0", "wan0"]
    assert all(len(s.sent) == 1 for s in steps)
    assert len(steps[4].expects) == 1 and "dport=50000" in steps[4].expects[0]
    assert steps[4].diff == []                         # no NAT: nothing rewritten


def test_checksums_a_sender_offloaded_do_not_make_packets_invalid():
    """A capture on an offloading port holds TCP checksums the device had yet to fill in."""
    helpers, hs = ftp_auto()
    recs = []
    for i, p in enumerate(ftp_packets()):
        b = bytearray(raw(p))
        b[36:38] = b"\x12\x34"                       # not the packet's checksum
        recs.append(Record(1000.0 + i, bytes(b)))
    steps = Replay(recs, helpers, hs).run()
    assert [s.ctstate for s in steps] == ["NEW", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED",
                                          "ESTABLISHED", "RELATED"]
    assert len(steps[4].expects) == 1


def test_masquerade_rewrite_shows_as_a_diff():
    wan = "198.18.0.5"
    masq = engine_for("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                      ":POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o wan0 -j MASQUERADE\nCOMMIT\n")
    helpers, hs = ftp_auto()
    r = Replay(records(ftp_packets(server_sees=wan)), helpers, hs, masq,
               addresses=(bytes([198, 18, 0, 1]), bytes([198, 18, 0, 5])))
    steps = r.run()
    assert [s.ctstate for s in steps[:5]] == ["NEW", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED",
                                              "ESTABLISHED"]
    assert "-PORT 10,0,0,2,195,80" in steps[4].diff
    assert "+PORT 198,18,0,5,195,80" in steps[4].diff
    assert steps[4].diff[0] == "--- packet 5 received"
    assert steps[5].ctstate == "RELATED" and IP(steps[5].sent[0][1]).dst == C


def test_helper_drop_and_log_show_in_the_step():
    pkts = ftp_packets()
    pkts[4] = IP(src=C, dst=S) / TCP(sport=40000, dport=21, flags="PA", seq=1009, ack=5001) \
        / Raw(b"PORT 10,0,0,2,195")
    helpers, hs = ftp_auto()
    step = Replay(records(pkts[:5]), helpers, hs).run()[4]
    assert step.drops == ["helper"] and step.sent == []
    assert any("dropping packet: partial matching" in n for n in step.notices)


def test_payload_diff():
    assert payload_diff(b"a\r\nb\r\n", b"a\r\nc\r\n", 3) == [
        "--- packet 3 received", "+++ packet 3 sent", "@@ -1,2 +1,2 @@", " a", "-b", "+c"]


# -- the CLI ---------------------------------------------------------------------------

LOOPING = """
from tunrouter.helpers.base import TCP, Helper


class Looping(Helper):
    name, proto, ports = "looping", TCP, (21,)

    def help(self, pkt):
        while True:
            pass
"""


def test_cli_replays_an_ethernet_capture_skipping_arp(tmp_path, capsys):
    pcap = tmp_path / "ftp.pcap"
    frames = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / p for p in ftp_packets()]
    frames.insert(0, Ether() / ARP(pdst=S))
    for i, f in enumerate(frames):
        f.time = 1_700_000_000 + i
    wrpcap(str(pcap), frames)
    rc = climain.main(["replay", str(pcap), "--helper", "ftp"])
    out, err = capsys.readouterr()
    assert rc == 0
    lines = out.splitlines()
    assert "skipped: not IPv4" in lines[1]
    assert lines[2].split()[:4] == ["2", "1.000000", "lan0", "NEW"]
    assert "expect: 300 proto=6" in out and "RELATED" in out
    assert "7 packets; helper faults: none" in err


def test_cli_linux_cooked_capture_and_rules(tmp_path, capsys):
    pcap = tmp_path / "sll.pcap"
    wrpcap(str(pcap), [CookedLinux() / p for p in ftp_packets()])
    rules = tmp_path / "rules.v4"
    rules.write_text("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                     "-A PREROUTING -p tcp --dport 21 -j CT --helper ftp\nCOMMIT\n")
    assert climain.main(["replay", str(pcap), "--rules", str(rules)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-2].split()[3] == "RELATED"


def test_cli_helper_file_that_loops_is_contained_and_fails_the_run(tmp_path, capsys):
    pcap = tmp_path / "ftp.pcap"
    wrpcap(str(pcap), ftp_packets())
    helper = tmp_path / "looping.py"
    helper.write_text(textwrap.dedent(LOOPING))
    rc = climain.main(["replay", str(pcap), "--helper", str(helper), "--budget-ms", "10"])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "helper looping: fault" in out and "HelperTimeout" in out
    assert "helper faults: looping=" in err
    assert "not forwarded" not in out                 # on_fault accept: all forwarded


@pytest.mark.parametrize("argv, message", [
    (["--helper", "nope"], "no helper named 'nope'"),
    (["--port", "21"], "--port goes with --helper"),
    (["--helper", "/nonexistent/h.py"], "cannot load"),
    (["--addresses", "1.2.3.4"], "expected LAN_IP,WAN_IP"),
])
def test_cli_usage_errors(tmp_path, capsys, argv, message):
    pcap = tmp_path / "ftp.pcap"
    wrpcap(str(pcap), ftp_packets())
    assert climain.main(["replay", str(pcap), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_not_a_capture(tmp_path, capsys):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"nope")
    assert climain.main(["replay", str(bad)]) == 2
    assert "tunrouter replay:" in capsys.readouterr().err


# -- `helper new` ----------------------------------------------------------------------

def test_helper_new_skeleton_tests_pass_and_its_fixture_replays(tmp_path):
    root = helpercli.new_helper("toyline", tmp_path)
    assert (root / "pyproject.toml").read_text().count(
        'toyline = "tunrouter_helper_toyline:ToylineHelper"') == 1
    assert '[project.entry-points."tunrouter.helpers"]' in (root / "pyproject.toml").read_text()
    fixture = root / "tests" / "toyline.pcap"
    assert fixture.stat().st_size > 0
    test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                          cwd=root, capture_output=True, text=True, timeout=120, check=False)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "2 passed" in test.stdout
    replay = subprocess.run([sys.executable, "-m", "tunrouter", "replay", str(fixture), "--helper",
                             str(root / "tunrouter_helper_toyline" / "__init__.py")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert replay.returncode == 0, replay.stderr
    assert "helper=toyline" in replay.stdout
    assert [line.split()[3] for line in replay.stdout.splitlines() if line[:4].strip().isdigit()] \
        == ["NEW", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "RELATED", "ESTABLISHED"]


def test_helper_new_cli(tmp_path, capsys):
    assert climain.main(["helper", "new", "toyz", "--dir", str(tmp_path)]) == 0
    assert "tunrouter-helper-toyz" in capsys.readouterr().out
    assert climain.main(["helper", "new", "Toyz", "--dir", str(tmp_path)]) == 2


def test_udp_is_replayed_too():
    steps = Replay(records([IP(src=C, dst=S) / UDP(sport=1, dport=2) / Raw(b"x"),
                            IP(src=S, dst=C) / UDP(sport=2, dport=1) / Raw(b"y")])).run()
    assert [s.ctstate for s in steps] == ["NEW", "ESTABLISHED"]
