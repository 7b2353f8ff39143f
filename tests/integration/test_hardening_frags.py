"""Hardening: a flood of first fragments that never complete, into a lab.

The default lab with a small ipfrag_high_thresh and a short ipfrag_time:
hping3 sends first fragments (MF set, offset 0) at full speed for a bounded
time.  The router stays up, reassembly memory stays under the threshold (plus
the one fragment the check admits, as in the kernel), the refusals are counted
as frag-no-mem, and once the queues time out a real fragmented datagram is
reassembled again.
"""
import json
import subprocess
import time

from conftest import LABS, lab_from, need, tunrouter

HIGH = 256 * 1024
FLOOD_SECONDS = 4
# One more fragment than the threshold may be admitted (the check is "above",
# made before adding): a 1,500-byte fragment's truesize plus a queue's.
SLACK = 2304 + 200


def _edit(text: str) -> str:
    return text + f"\n[routers.r1.ipfrag]\nhigh_thresh = {HIGH}\nlow_thresh = {HIGH // 2}\ntime = 2\n"


def _reassembly(lab) -> dict:
    stats = json.loads(tunrouter("stats", "--lab", lab.name, "--json").stdout)
    return stats["reassembly"], stats


def test_first_fragment_flood_is_bounded_counted_and_forgotten(tmp_path):
    need("hping3")
    with lab_from(LABS / "home.toml", tmp_path, edit=_edit) as lab:
        flood = subprocess.Popen(["ip", "netns", "exec", lab.ns("web"), "timeout", str(FLOOD_SECONDS),
                                  "hping3", "--flood", "-q", "-n", "--udp", "-x", "-d", "1400",
                                  "--rand-source", "-p", "53", "203.0.113.1"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        mems, deadline = [], time.monotonic() + FLOOD_SECONDS + 20
        try:
            while flood.poll() is None:
                assert time.monotonic() < deadline
                mems.append(_reassembly(lab)[0]["mem"])
                time.sleep(0.2)
        finally:
            if flood.poll() is None:
                flood.kill()
            flood.wait(timeout=10)
        reasm, stats = _reassembly(lab)
        drops = {k: v for k, v in stats["drops"].items() if v}
        print(f"\nfragment flood: mem max {max(mems)} of high_thresh {HIGH}; reassembly {reasm}; "
              f"router drops {drops}")
        assert max(mems + [reasm["mem"]]) <= HIGH + SLACK
        assert reasm["drops"]["frag-no-mem"] > 0
        assert stats["drops"]["frag-no-mem"] == reasm["drops"]["frag-no-mem"]
        assert stats["drops"]["internal"] == 0
        assert reasm["ReasmOKs"] == 0
        # ipfrag_time = 2: the queues expire, the memory comes back, and a
        # fragmented echo to the router's address is reassembled and answered.
        deadline = time.monotonic() + 15
        while _reassembly(lab)[0]["mem"]:
            assert time.monotonic() < deadline, _reassembly(lab)[0]
            time.sleep(0.5)
        p = lab.run("web", "ping", "-c", "2", "-W", "2", "-s", "3000", "203.0.113.1", check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        assert _reassembly(lab)[0]["ReasmOKs"] >= 2
