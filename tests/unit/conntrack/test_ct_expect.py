"""The expectation table: policy limits, clashes, use once, death with the master, events."""
from tunrouter.conntrack.conn import Conn, Help
from tunrouter.conntrack.expect import BUSY, DESTROY, FULL, NEW, Expectation, ExpectTable
from tunrouter.conntrack.format import expect_line


def b(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


class FtpLike:
    name = "ftp"


HELPER = FtpLike()


def master() -> Conn:
    m = Conn((b("10.1.0.2"), b("198.51.100.7"), 6, 40000, 21),
             (b("198.51.100.7"), b("203.0.113.1"), 6, 21, 40000))
    m.help = Help(HELPER)
    m.deadline = 1000.0
    return m


def exp(m: Conn, port: int, src="198.51.100.7", deadline=300.0) -> Expectation:
    return Expectation(6, None if src is None else b(src), None, b("203.0.113.1"), port, m,
                       HELPER, deadline, port, 1)


def test_one_per_master_evicts_the_oldest_and_events_tell():
    t, m = ExpectTable(), master()
    assert t.add(exp(m, 50000), 1, 100) is None
    assert t.add(exp(m, 50001), 1, 100) is None
    assert [e.dport for e in t.all(0.0)] == [50001]
    assert [(k, e.dport) for k, e in t.drain_events()] == [(NEW, 50000), (DESTROY, 50000),
                                                            (NEW, 50001)]


def test_used_once_and_only_by_a_matching_tuple():
    t, m = ExpectTable(), master()
    t.add(exp(m, 50000), 1, 100)
    assert t.take((b("192.0.2.9"), b("203.0.113.1"), 6, 20, 50000), 1.0) is None   # wrong source
    got = t.take((b("198.51.100.7"), b("203.0.113.1"), 6, 20, 50000), 1.0)
    assert got is not None and got.master is m
    assert t.take((b("198.51.100.7"), b("203.0.113.1"), 6, 20, 50000), 1.0) is None
    assert t.count == 0


def test_clash_with_another_master_is_busy_and_table_max_is_full():
    t, m1, m2 = ExpectTable(), master(), master()
    t.add(exp(m1, 50000, src=None), 2, 100)
    assert t.add(exp(m2, 50000), 2, 100) == BUSY             # overlaps the wildcard one
    assert t.add(exp(m2, 50001), 2, 1) == FULL


def test_expire_and_die_with_the_master():
    t, m = ExpectTable(), master()
    t.add(exp(m, 50000, deadline=5.0), 4, 100)
    t.add(exp(m, 50001, deadline=50.0), 4, 100)
    t.expire(6.0)
    assert [e.dport for e in t.all(6.0)] == [50001]
    t.remove_master(m)
    assert t.count == 0 and m.help.expects == []


def test_expect_line_as_conntrack_tools_prints_it():
    t, m = ExpectTable(), master()
    e = exp(m, 50000)
    t.add(e, 1, 100)
    assert expect_line(e, 0.5) == (
        "299 proto=6 src=198.51.100.7 dst=203.0.113.1 sport=0 dport=50000 "
        "mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 "
        "master-src=10.1.0.2 master-dst=198.51.100.7 sport=40000 dport=21 class=0 helper=ftp")
