"""NFLOG captures as LINKTYPE_NFLOG pcap files, as `tcpdump -i nflog:N` writes them."""
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from packets import H1, LAN_TUN, SRV, icmp_echo, make_router

from tunrouter.core.hooks import engine_for
from tunrouter.driver.nflogsink import LINKTYPE_NFLOG, NflogSink

RULES = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
         "-A FORWARD -p icmp -j NFLOG --nflog-group 5 --nflog-prefix \"seen: \" {extra}\n"
         "COMMIT\n")


def captured(extra: str = "", packets: int = 1):
    r = make_router()
    r.set_rules(engine_for(RULES.format(extra=extra)))
    for seq in range(packets):
        r.process(LAN_TUN, icmp_echo(H1, SRV, seq=seq, data=b"A" * 100), 0.0)
    return r.rules.nflogs


def records(path: Path) -> tuple[int, list[bytes]]:
    data = path.read_bytes()
    magic, _maj, _min, _tz, _sig, _snap, linktype = struct.unpack_from("=IHHiIII", data)
    assert magic == 0xA1B2C3D4
    out, pos = [], 24
    while pos < len(data):
        _s, _us, incl, orig = struct.unpack_from("=IIII", data, pos)
        assert incl == orig
        out.append(data[pos + 16:pos + 16 + incl])
        pos += 16 + incl
    return linktype, out


def tlvs(frame: bytes) -> dict[int, bytes]:
    family, version, group = struct.unpack_from("!BBH", frame)
    assert (family, version) == (2, 0)
    found, pos = {"group": group}, 4
    while pos < len(frame):
        length, kind = struct.unpack_from("=HH", frame, pos)
        found[kind] = frame[pos + 4:pos + length]
        pos += length + (-length % 4)
    return found


def test_one_file_per_group_with_prefix_hook_and_packet(tmp_path):
    sink = NflogSink(tmp_path)
    sink.write(captured())
    sink.close()
    linktype, frames = records(tmp_path / "nflog-5.pcap")
    assert (linktype, len(frames)) == (LINKTYPE_NFLOG, 1)
    t = tlvs(frames[0])
    assert t["group"] == 5
    assert t[1] == struct.pack("!HBB", 0x0800, 2, 0)          # IPv4, NF_INET_FORWARD
    assert t[10] == b"seen: \0"
    assert t[9][9] == 1 and t[9][12:16] == bytes([10, 1, 0, 2])  # the IPv4 packet, ICMP from H1


def test_nflog_size_cuts_the_copy(tmp_path):
    sink = NflogSink(tmp_path)
    sink.write(captured("--nflog-size 40"))
    sink.close()
    _, frames = records(tmp_path / "nflog-5.pcap")
    assert len(tlvs(frames[0])[9]) == 40


def test_threshold_gathers_before_writing(tmp_path):
    sink = NflogSink(tmp_path)
    sink.write(captured("--nflog-threshold 3", packets=2))
    assert not (tmp_path / "nflog-5.pcap").exists()
    sink.write(captured("--nflog-threshold 3", packets=1))
    assert len(records(tmp_path / "nflog-5.pcap")[1]) == 3
    sink.close()


def test_appends_to_an_existing_capture(tmp_path):
    for _ in range(2):
        sink = NflogSink(tmp_path)
        sink.write(captured())
        sink.close()
    assert len(records(tmp_path / "nflog-5.pcap")[1]) == 2


def test_unwritable_directory_counts_lost_records(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    sink = NflogSink(blocker / "sub")
    sink.write(captured(packets=1))
    assert (sink.written, sink.lost) == (0, 1)


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")
def test_tcpdump_reads_the_capture(tmp_path):
    sink = NflogSink(tmp_path)
    sink.write(captured(packets=2))
    sink.close()
    out = subprocess.run(["tcpdump", "-nr", str(tmp_path / "nflog-5.pcap")], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and all(f"IP {H1} > {SRV}: ICMP echo request" in line for line in lines), out.stdout
