"""limit, hashlimit, connlimit and recent, time advanced by the test, against the kernel's numbers.

HZ is 250: a jiffy is 4 ms, and the kernel rounds every time stamp down to one.
"""
import pytest
from rules_ctx import conn, ctx, engine
from scapy.all import IP, TCP, UDP

from tunrouter.conntrack.conn import CtInfo
from tunrouter.rules import ACCEPT, DROP, FILTER, Engine, Hook, merge
from tunrouter.rules.limits import CREDITS_PER_JIFFY, user2credits


def udp_from(src: str, sport: int = 5000, dport: int = 53):
    return IP(src=src, dst="10.2.0.2") / UDP(sport=sport, dport=dport)


def passes(e: Engine, pkt, now: float, n: int = 1, **kw) -> int:
    """How many of n identical packets at time now the engine accepts."""
    return sum(e.run(FILTER, Hook.INPUT, ctx(pkt, now=now, **kw)) is ACCEPT for _ in range(n))


LIMIT = "-P INPUT DROP\n-A INPUT -m limit --limit {} --limit-burst {} -j ACCEPT"


def test_limit_credit_arithmetic_is_the_kernels():
    # CREDITS_PER_JIFFY = POW2_BELOW32(0xFFFFFFFF / (250 * 86400)) = 128;
    # 10/s: avg 1000 (1/10000 s), cost = 1000 * 250 * 128 / 10000 = 3200.
    assert CREDITS_PER_JIFFY == 128
    assert user2credits(1000) == 3200
    assert user2credits(1000 * 100) == 320000


def test_limit_10_per_second_burst_100():
    e = engine(LIMIT.format("10/s", 100))
    pkt = udp_from("10.1.0.2")
    assert passes(e, pkt, 1000.0, 150) == 100          # the bucket starts full
    assert passes(e, pkt, 1000.096, 5) == 0            # 24 jiffies: 3072 credits < 3200
    assert passes(e, pkt, 1000.100, 5) == 1            # 25 jiffies: exactly one cost
    total = sum(passes(e, pkt, 1000.1 + k / 100, 3) for k in range(1, 1001))
    assert total == 100                                # then 10 a second, for 10 s


def test_limit_refills_only_up_to_the_burst():
    e = engine(LIMIT.format("1/s", 3))
    pkt = udp_from("10.1.0.2")
    assert passes(e, pkt, 0.0, 10) == 3
    assert passes(e, pkt, 3600.0, 10) == 3             # an hour idle still means 3


def test_limit_1_per_second_burst_1():
    e = engine(LIMIT.format("1/second", 1))
    pkt = udp_from("10.1.0.2")
    assert [passes(e, pkt, t) for t in (0.0, 0.5, 0.996, 1.0, 1.5, 2.0)] == [1, 0, 0, 1, 0, 1]


def test_limit_default_is_3_per_hour_burst_5():
    e = engine("-P INPUT DROP\n-A INPUT -m limit -j ACCEPT")
    pkt = udp_from("10.1.0.2")
    assert passes(e, pkt, 0.0, 10) == 5
    assert passes(e, pkt, 1199.0) == 0
    assert passes(e, pkt, 1200.0) == 1


def test_syn_flood_chain_returns_under_the_limit_and_drops_over_it():
    e = engine(":syn-flood - [0:0]\n-A INPUT -p tcp --syn -j syn-flood\n"
               "-A syn-flood -m limit --limit 10/s --limit-burst 100 -j RETURN\n"
               "-A syn-flood -j DROP")
    syn = IP(src="10.1.0.2", dst="10.2.0.2") / TCP(flags="S")
    verdicts = [e.run(FILTER, Hook.INPUT, ctx(syn, now=5.0)) for _ in range(120)]
    assert verdicts.count(ACCEPT) == 100 and verdicts.count(DROP) == 20
    assert e.counters("filter", "INPUT", None) == (100, 4000)   # RETURN -> INPUT's policy


HASHLIMIT = ("-P INPUT DROP\n-A INPUT -m hashlimit --hashlimit-upto 1/s --hashlimit-burst 2 "
             "--hashlimit-mode srcip --hashlimit-name h --hashlimit-htable-expire {} -j ACCEPT")


def test_hashlimit_keeps_one_bucket_per_source():
    e = engine(HASHLIMIT.format(10000))
    assert passes(e, udp_from("10.1.0.2"), 0.0, 5) == 2
    assert passes(e, udp_from("10.1.0.3"), 0.0, 5) == 2
    assert passes(e, udp_from("10.1.0.2"), 1.0, 5) == 1
    assert passes(e, udp_from("10.1.0.2"), 1.5, 5) == 0


def test_hashlimit_above_srcmask_and_ports():
    e = engine("-A INPUT -p udp -m hashlimit --hashlimit-above 1/min --hashlimit-burst 1 "
               "--hashlimit-mode srcip,dstport --hashlimit-srcmask 24 --hashlimit-name h -j DROP")
    assert passes(e, udp_from("10.1.0.2"), 0.0) == 1                 # first: under, not dropped
    assert passes(e, udp_from("10.1.0.77"), 0.0) == 0                # same /24, same port
    assert passes(e, udp_from("10.1.0.77", dport=54), 0.0) == 1      # another port
    assert passes(e, udp_from("10.1.1.2"), 0.0) == 1                 # another /24


def test_hashlimit_entries_expire_and_start_full_again():
    """1/min burst 2, expiry 60 s after the last packet; the gc runs every second."""
    e = engine(HASHLIMIT.format(60000).replace("1/s", "1/min"))
    pkt = udp_from("10.1.0.2")
    assert passes(e, pkt, 0.0, 3) == 2
    assert passes(e, pkt, 59.0) == 0          # 59 s refilled 59/60 of one packet
    assert passes(e, pkt, 70.0) == 1          # refilled; entry kept alive by the 59 s packet
    assert passes(e, pkt, 200.0, 3) == 2      # idle > 60 s: collected, a new full entry


def test_hashlimit_full_table_drops_new_flows():
    e = engine("-A INPUT -m hashlimit --hashlimit-upto 10/s --hashlimit-mode srcip "
               "--hashlimit-name h --hashlimit-htable-size 2 --hashlimit-htable-max 2 -j ACCEPT")
    assert passes(e, udp_from("10.1.0.2"), 0.0) == 1
    assert passes(e, udp_from("10.1.0.3"), 0.0) == 1
    assert e.run(FILTER, Hook.INPUT, ctx(udp_from("10.1.0.4"), now=0.0)) is DROP
    assert e.hotdrops == 1


def test_hashlimit_table_survives_a_reload_with_the_same_name_and_settings():
    e = engine(HASHLIMIT.format(10000))
    assert passes(e, udp_from("10.1.0.2"), 0.0, 5) == 2
    again = Engine(e.ruleset, previous=e)
    assert passes(again, udp_from("10.1.0.2"), 0.0, 5) == 0
    changed = engine(HASHLIMIT.format(10000).replace("burst 2", "burst 3"), previous=e)
    assert passes(changed, udp_from("10.1.0.2"), 0.0, 5) == 3


class Conns:
    """A fake conntrack view: the connections still in the table."""

    def __init__(self):
        self.live = set()

    def alive(self, c) -> bool:
        return c in self.live


def test_connlimit_counts_connections_per_source_including_this_one():
    view = Conns()
    e = engine("-A INPUT -p tcp --syn -m connlimit --connlimit-above 2 -j REJECT")
    syn = IP(src="10.1.0.2", dst="10.2.0.2") / TCP(flags="S")
    conns = [conn(sport=40000 + i) for i in range(4)]
    verdicts = []
    for c in conns:
        view.live.add(c)
        verdicts.append(e.run(FILTER, Hook.INPUT, ctx(syn, CtInfo.NEW, c, conns=view)))
    assert [v is ACCEPT for v in verdicts] == [True, True, False, False]
    view.live -= {conns[0], conns[1], conns[2]}         # three closed
    c = conn(sport=41000)
    view.live.add(c)
    assert e.run(FILTER, Hook.INPUT, ctx(syn, CtInfo.NEW, c, conns=view)) is ACCEPT


def test_connlimit_upto_mask_and_daddr():
    view = Conns()
    e = engine("-P INPUT DROP\n-A INPUT -m connlimit --connlimit-upto 1 --connlimit-mask 24 "
               "--connlimit-daddr -j ACCEPT")
    a, b = conn(sport=1), conn(sport=2)
    view.live |= {a, b}
    to_a = IP(src="10.1.0.2", dst="10.2.0.2") / TCP()
    to_b = IP(src="10.1.0.3", dst="10.2.0.200") / TCP()
    assert e.run(FILTER, Hook.INPUT, ctx(to_a, CtInfo.NEW, a, conns=view)) is ACCEPT
    assert e.run(FILTER, Hook.INPUT, ctx(to_b, CtInfo.NEW, b, conns=view)) is DROP
    assert e.run(FILTER, Hook.INPUT, ctx(to_a, CtInfo.ESTABLISHED, a, conns=view)) is DROP


def test_connlimit_sweep_forgets_gone_connections():
    view = Conns()
    e = engine("-A INPUT -m connlimit --connlimit-above 5 -j DROP")
    c = conn()
    view.live.add(c)
    e.run(FILTER, Hook.INPUT, ctx(IP(src="10.1.0.2") / TCP(), CtInfo.NEW, c, conns=view))
    (count,) = [s for _r, s in e.state.rules.values()]
    assert count.lists
    view.live.clear()
    e.sweep(view)
    assert count.lists == {}


SSH = IP(src="10.1.0.2", dst="10.2.0.2", ttl=64) / TCP(dport=22, flags="S")
BRUTE = ("-A INPUT -p tcp --dport 22 -m recent --name ssh --update --seconds 60 --hitcount 4 "
         "-j DROP\n-A INPUT -p tcp --dport 22 -m recent --name ssh --set -j ACCEPT")


def test_recent_ssh_brute_force_guard():
    e = engine(BRUTE)
    seen = [e.run(FILTER, Hook.INPUT, ctx(SSH, now=float(t))) for t in range(6)]
    # --set stamps t=0..3; from t=4 --update counts 4 stamps within 60 s and drops,
    # and being an update it stamps the dropped attempts too.
    assert [v is ACCEPT for v in seen] == [True, True, True, True, False, False]
    table = e.state.named[("recent", "ssh")]
    assert len(table.entries) == 1
    assert e.run(FILTER, Hook.INPUT, ctx(SSH, now=30.0)) is DROP
    # At 65 s only the stamps of 5 s and 30 s are within the last 60 s.
    assert e.run(FILTER, Hook.INPUT, ctx(SSH, now=65.0)) is ACCEPT


def test_recent_rcheck_remove_and_rdest():
    e = engine("-A INPUT -m recent --name t --rcheck -j DROP\n"
               "-A INPUT -p udp --dport 1 -m recent --name t --set --rdest\n"
               "-A INPUT -p udp --dport 2 -m recent --name t --remove --rdest")
    mark = IP(src="10.9.9.9", dst="10.1.0.2") / UDP(dport=1)
    probe = IP(src="10.1.0.2", dst="10.2.0.2") / UDP(dport=9)
    assert e.run(FILTER, Hook.INPUT, ctx(probe)) is ACCEPT
    e.run(FILTER, Hook.INPUT, ctx(mark))                     # remembers 10.1.0.2 (its dst)
    assert e.run(FILTER, Hook.INPUT, ctx(probe)) is DROP
    e.run(FILTER, Hook.INPUT, ctx(IP(src="10.9.9.9", dst="10.1.0.2") / UDP(dport=2)))
    assert e.run(FILTER, Hook.INPUT, ctx(probe)) is ACCEPT


def test_recent_rttl_and_forwarded_ttl():
    """--rttl compares the TTL as it was before forwarding: +1 when an output device is set."""
    e = engine("-A FORWARD -m recent --name r --rcheck --rttl -j DROP\n"
               "-A INPUT -m recent --name r --set")
    e.run(FILTER, Hook.INPUT, ctx(IP(src="10.1.0.2", ttl=64) / UDP()))
    same = IP(src="10.1.0.2", ttl=63) / UDP()          # seen at FORWARD after the decrement
    other = IP(src="10.1.0.2", ttl=20) / UDP()
    assert e.run(FILTER, Hook.FORWARD, ctx(same, out_name="wan0")) is DROP
    assert e.run(FILTER, Hook.FORWARD, ctx(other, out_name="wan0")) is not DROP


def test_recent_reap_and_lru_limit():
    e = engine("-A INPUT -m recent --name l --set")
    for i in range(250):
        e.run(FILTER, Hook.INPUT, ctx(IP(src=f"10.3.{i // 256}.{i % 256}") / UDP(), now=0.0))
    table = e.state.named[("recent", "l")]
    assert len(table.entries) == 200                   # ip_list_tot: the oldest 50 went
    r = engine("-A INPUT -m recent --name l --update --seconds 10 --reap", previous=e)
    assert r.state.named[("recent", "l")] is table     # same name: the table survives the reload
    r.run(FILTER, Hook.INPUT, ctx(IP(src="10.3.0.249") / UDP(), now=100.0))
    assert len(table.entries) == 199                   # one stale entry reaped per packet


@pytest.mark.parametrize("keep", [True, False])
def test_limit_bucket_survives_noflush_but_not_a_flush_restore(keep):
    e = engine(LIMIT.format("1/min", 2))
    pkt = udp_from("10.1.0.2")
    assert passes(e, pkt, 0.0, 5) == 2
    if keep:
        new = Engine(merge(e.ruleset, "*filter\n-A INPUT -j ACCEPT\nCOMMIT\n"), previous=e)
        assert passes(new, pkt, 1.0) == 1               # the appended ACCEPT, not the limit
        assert new.counters("filter", "INPUT", 0) == (2, 56)
    else:
        new = engine(LIMIT.format("1/min", 2), previous=e)
        assert passes(new, pkt, 1.0, 5) == 2
