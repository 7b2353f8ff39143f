"""ConnTable: confirm, early drop, expiry, delete/flush, events, statistics."""
import pytest
from scapy.layers.inet import IP
from scapy.packet import Raw

from ct_packets import T0, Router, Tcp, desc, icmp_pkt, tcp_seg, udp_pkt
from tunrouter.conntrack.conn import CTSTATE, IPS_ASSURED, IPS_CONFIRMED, CtInfo
from tunrouter.conntrack.events import EventType
from tunrouter.conntrack.proto.tcp import TcpState
from tunrouter.conntrack.settings import Settings
from tunrouter.conntrack.table import UNTRACKED, ConnTable
from tunrouter.conntrack.tuple import Dir

CA = bytes([10, 0, 1, 2])


def udp_flow(r: Router, sport: int, reply: bool = False, stream: bool = False):
    ct, _ = r.send(udp_pkt("C", sport=sport))
    if reply:
        r.send(udp_pkt("S", sport=sport))
    if stream:
        r.send(udp_pkt("C", sport=sport), after=2.5)
    return ct


# -- NEW and confirm (kernel: __nf_conntrack_confirm) --------------------------

def test_unconfirmed_new_is_not_in_table():
    """A first packet the rules drop leaves nothing behind."""
    t = ConnTable()
    ct, ctinfo = t.track(desc(udp_pkt("C")), T0)
    assert ctinfo == CtInfo.NEW
    assert (t.count(), t.conns(T0), t.lookup(ct.orig, T0)) == (0, [], None)
    ct2, ctinfo2 = t.track(desc(udp_pkt("C")), T0 + 1)
    assert ctinfo2 == CtInfo.NEW and ct2 is not ct


def test_confirm_inserts_both_directions():
    t = ConnTable()
    ct, _ = t.track(desc(udp_pkt("C")), T0)
    assert t.confirm(ct, T0)
    assert ct.status & IPS_CONFIRMED
    assert t.lookup(ct.orig, T0) == (ct, Dir.ORIGINAL)
    assert t.lookup(ct.reply, T0) == (ct, Dir.REPLY)
    assert (t.count(), t.stats.insert) == (1, 1)


def test_confirm_twice_is_harmless():
    t = ConnTable()
    ct, _ = t.track(desc(udp_pkt("C")), T0)
    assert t.confirm(ct, T0) and t.confirm(ct, T0)
    assert (t.count(), t.stats.insert) == (1, 1)


def test_confirm_clash_refused():
    """Two unconfirmed entries for one tuple: the second confirm fails (insert_failed, drop)."""
    t = ConnTable()
    first, _ = t.track(desc(udp_pkt("C")), T0)
    second, _ = t.track(desc(udp_pkt("C")), T0)
    assert t.confirm(first, T0)
    assert not t.confirm(second, T0)
    assert (t.stats.insert_failed, t.stats.drop, t.count()) == (1, 1, 1)


def test_confirm_replaces_expired_holder():
    """An entry past its deadline, not yet reaped, does not block a new one."""
    t = ConnTable()
    first, _ = t.track(desc(udp_pkt("C")), T0)
    second, _ = t.track(desc(udp_pkt("C")), T0)
    t.confirm(first, T0)
    second.deadline = T0 + 60
    assert t.confirm(second, T0 + 31)
    assert t.lookup(second.orig, T0 + 31)[0] is second


def test_untracked_constant():
    ct, ctinfo = UNTRACKED
    assert (ct, ctinfo, CTSTATE[ctinfo]) == (None, CtInfo.UNTRACKED, "UNTRACKED")


@pytest.mark.parametrize("ctinfo,state,direction", [
    (CtInfo.NEW, "NEW", Dir.ORIGINAL), (CtInfo.ESTABLISHED, "ESTABLISHED", Dir.ORIGINAL),
    (CtInfo.ESTABLISHED_REPLY, "ESTABLISHED", Dir.REPLY), (CtInfo.RELATED, "RELATED", Dir.ORIGINAL),
    (CtInfo.RELATED_REPLY, "RELATED", Dir.REPLY), (CtInfo.INVALID, "INVALID", None),
])
def test_ctinfo_state_and_direction(ctinfo, state, direction):
    assert CTSTATE[ctinfo] == state
    if direction is not None:
        assert Dir(ctinfo >= CtInfo.ESTABLISHED_REPLY) == direction


# -- table full: early drop (kernel: early_drop) ------------------------------

def test_full_table_early_drops_unassured():
    r = Router(nf_conntrack_max=3)
    assured = udp_flow(r, 1000, reply=True, stream=True)
    replied = udp_flow(r, 1001, reply=True)
    oldest_unassured = udp_flow(r, 1002)
    assert assured.status & IPS_ASSURED and not replied.status & IPS_ASSURED
    r.table.drain_events()
    udp_flow(r, 1003)
    survivors = sorted(ct.orig[3] for ct in r.table.conns(r.now))
    assert survivors == [1000, 1002, 1003]          # the oldest non-ASSURED entry went
    assert r.table.stats.early_drop == 1
    assert [e.type for e in r.table.drain_events()] == [EventType.DESTROY, EventType.NEW]
    assert oldest_unassured.status & IPS_CONFIRMED


def test_full_table_of_assured_drops_packet():
    r = Router(nf_conntrack_max=2)
    udp_flow(r, 1000, reply=True, stream=True)
    udp_flow(r, 1001, reply=True, stream=True)
    ct, ctinfo = r.table.track(desc(udp_pkt("C", sport=1002)), r.now)
    assert (ct, ctinfo) == (None, CtInfo.DROP)
    assert r.table.reason == "table full, dropping packet"
    assert (r.table.stats.drop, r.table.stats.early_drop, r.table.count()) == (1, 0, 2)


def test_full_table_existing_flows_still_tracked():
    r = Router(nf_conntrack_max=1)
    udp_flow(r, 1000, reply=True, stream=True)
    assert r.send(udp_pkt("S", sport=1000))[1] == CtInfo.ESTABLISHED_REPLY


def test_full_table_due_entries_reaped_first():
    r = Router(nf_conntrack_max=1)
    udp_flow(r, 1000)
    assert r.send(udp_pkt("C", sport=1001), after=31)[1] == CtInfo.NEW
    assert r.table.stats.early_drop == 0


def test_assured_tcp_survives_early_drop():
    r = Router(nf_conntrack_max=2)
    Tcp(r).to_state("ESTABLISHED")
    udp_flow(r, 1000)
    r.send(icmp_pkt("C", 8))
    assert [ct.orig[2] for ct in r.table.conns(r.now)] == [6, 1]


def test_max_zero_means_no_limit():
    r = Router(nf_conntrack_max=0)
    for port in range(1000, 1050):
        udp_flow(r, port)
    assert r.table.count() == 50


# -- expiry ---------------------------------------------------------------------

class NoScanDict(dict):
    """A conns dict that fails the test if anything walks it."""

    def _refuse(self, *args):
        raise AssertionError("expire() must not scan the table")

    __iter__ = keys = values = items = _refuse


def test_expire_touches_only_what_expires():
    r = Router()
    ports = range(2000, 2200)
    for port in ports:
        udp_flow(r, port, reply=True)                   # due at T0 + 30 ...
    r.now = T0 + 2.5
    for port in ports:
        r.send(udp_pkt("C", sport=port))                # ... now streams, due at T0 + 122.5
    assert r.table.expire(T0 + 60) == 0                 # their first bucket came due: refiled
    r.now = T0 + 60
    short = udp_flow(r, 3000)                           # 30 s
    r.table._conns = NoScanDict(r.table._conns)
    assert r.table.next_deadline() == T0 + 90
    assert r.table.expire(T0 + 90) == 1
    assert r.table.lookup(short.orig, T0 + 90) is None
    assert (r.table.count(), r.table.next_deadline()) == (200, T0 + 123)


def test_expire_refiles_entries_whose_deadline_moved():
    r = Router()
    ct = udp_flow(r, 1000)
    r.send(udp_pkt("C", sport=1000), after=25)         # now due at T0 + 55
    assert r.table.expire(T0 + 30) == 0
    assert r.table.next_deadline() == T0 + 55
    assert r.table.expire(T0 + 55) == 1
    assert ct not in r.table.conns(T0 + 55)


def test_established_rst_moves_deadline_earlier():
    """ESTABLISHED (5 days) then RST: expiry 10 s later, not in 5 days."""
    tcp = Tcp(Router())
    tcp.to_state("ESTABLISHED")
    tcp.client("R")
    assert tcp.r.table.next_deadline() <= tcp.r.now + 10
    assert tcp.r.table.expire(tcp.r.now + 10) == 1


def test_expired_entry_invisible_before_expire():
    """Lookups treat an entry past its deadline as gone (kernel: nf_ct_is_expired)."""
    r = Router()
    old = udp_flow(r, 1000)
    r.table.drain_events()
    ct, ctinfo = r.send(udp_pkt("C", sport=1000), after=30)
    assert ctinfo == CtInfo.NEW and ct is not old
    destroy, new = r.table.drain_events()
    assert (destroy.type, destroy.timeout, new.type) == (EventType.DESTROY, None, EventType.NEW)


def test_no_entries_no_deadline():
    assert ConnTable().next_deadline() == float("inf")


def test_expire_many_buckets():
    r = Router()
    for i in range(100):
        r.send(udp_pkt("C", sport=1000 + i), after=0.5)
    assert r.table.expire(r.now + 31) == 100
    assert r.table.count() == 0
    assert r.table.next_deadline() == float("inf")


# -- delete, flush, listing -------------------------------------------------------

def test_delete_by_filter():
    r = Router()
    udp_flow(r, 1000)
    udp_flow(r, 1001)
    Tcp(r).to_state("ESTABLISHED")
    r.table.drain_events()
    assert r.table.delete(lambda ct: ct.orig[2] == 17 and ct.orig[3] == 1001, r.now, portid=4242) == 1
    assert sorted(ct.orig[3] for ct in r.table.conns(r.now)) == [1000, 40000]
    [destroy] = r.table.drain_events()
    assert (destroy.type, destroy.portid, destroy.timeout) == (EventType.DESTROY, 4242, 30)


def test_listing_with_filter():
    r = Router()
    udp_flow(r, 40001)
    Tcp(r).to_state("ESTABLISHED")
    assured = r.table.conns(r.now, lambda ct: ct.status & IPS_ASSURED)
    assert [ct.state for ct in assured] == [TcpState.ESTABLISHED]
    assert r.table.conns(r.now, lambda ct: ct.reply[0] == CA) == []


def test_filter_module_predicates_fit():
    """filter.make_filter() (conntrack(8)'s options) feeds conns() and delete() as is."""
    from tunrouter.conntrack.filter import make_filter    # another session's module: kept local
    r = Router()
    udp_flow(r, 40001)
    Tcp(r).to_state("ESTABLISHED")
    spec = {"protonum": 6, "state": "ESTABLISHED", "status": ["ASSURED"], "orig_src": "10.0.1.0/24"}
    assert [ct.orig[4] for ct in r.table.conns(r.now, make_filter(spec))] == [80]
    assert r.table.delete(make_filter({"protonum": 17}), r.now) == 1


def test_flush():
    r = Router()
    for port in range(1000, 1010):
        udp_flow(r, port)
    r.table.drain_events()
    assert r.table.flush(r.now, portid=7) == 10
    assert (r.table.count(), r.table.conns(r.now), r.table.next_deadline()) == (0, [], float("inf"))
    assert {e.portid for e in r.table.drain_events()} == {7}


def test_listing_skips_expired_not_yet_reaped():
    r = Router()
    udp_flow(r, 1000)
    r.now += 30.4                                       # bucket for second 1031 not due yet
    assert r.table.count() == 1
    assert r.table.conns(r.now) == []


# -- events ---------------------------------------------------------------------------

def test_events_tcp_lifecycle():
    tcp = Tcp(Router())
    tcp.to_state("TIME_WAIT")
    got = [(e.type, e.state and TcpState(e.state).name, e.timeout) for e in tcp.r.table.drain_events()]
    assert got == [
        (EventType.NEW, "SYN_SENT", 120),
        (EventType.UPDATE, "SYN_RECV", 60),
        (EventType.UPDATE, "ESTABLISHED", 432000),
        (EventType.UPDATE, "FIN_WAIT", 120),
        (EventType.UPDATE, "CLOSE_WAIT", 60),
        (EventType.UPDATE, "LAST_ACK", 30),
        (EventType.UPDATE, "TIME_WAIT", 120),
    ]


def test_events_none_for_plain_refresh():
    r = Router()
    udp_flow(r, 1000, reply=True)
    r.table.drain_events()
    r.send(udp_pkt("C", sport=1000))
    assert r.table.drain_events() == []


def test_events_bounded():
    t = ConnTable(events_max=3)
    for port in range(1000, 1005):
        ct, _ = t.track(desc(udp_pkt("C", sport=port)), T0)
        t.confirm(ct, T0)
    assert (len(t.events), t.events_lost) == (3, 2)
    assert len(t.drain_events()) == 3 and t.events == []


def test_events_disabled():
    r = Router(nf_conntrack_events=0)
    udp_flow(r, 1000, reply=True)
    assert r.table.events == []


# -- statistics, ids -----------------------------------------------------------------

def test_stats_counts():
    r = Router()
    udp_flow(r, 1000)
    r.send(udp_pkt("C", sport=1001, len=3))               # malformed: invalid
    r.send(icmp_pkt("S", 3))                              # an error about nothing: error
    s = r.table.stats
    assert (s.insert, s.invalid, s.error, s.found, s.search_restart) == (1, 1, 1, 0, 0)


def test_conn_id_stable_and_distinct():
    r = Router()
    a, b = udp_flow(r, 1000), udp_flow(r, 1001)
    assert a.id == a.id and a.id != b.id and 0 <= a.id < 2**32


def test_lookup_expired_reaps():
    r = Router()
    ct = udp_flow(r, 1000)
    assert r.table.lookup(ct.orig, r.now + 31) is None
    assert r.table.count() == 0


def test_settings_changed_at_run_time():
    s = Settings()
    t = ConnTable(s)
    s.set("nf_conntrack_udp_timeout", 5)
    ct, _ = t.track(desc(udp_pkt("C")), T0)
    assert ct.deadline == T0 + 5


@pytest.mark.parametrize("pkt", [
    icmp_pkt("C", 8, ident=99),
    udp_pkt("C", sport=1002),
], ids=["icmp", "udp"])
def test_full_table_drops_any_protocol(pkt):
    r = Router(nf_conntrack_max=1)
    udp_flow(r, 1000, reply=True, stream=True)
    assert r.table.track(desc(pkt), r.now) == (None, CtInfo.DROP)


def test_full_table_drops_tcp_and_generic():
    r = Router(nf_conntrack_max=1)
    udp_flow(r, 1000, reply=True, stream=True)
    assert r.table.track(desc(tcp_seg("C", "S", 1000)), r.now) == (None, CtInfo.DROP)
    generic = IP(src="10.0.1.2", dst="10.0.2.2", proto=253) / Raw(b"x")
    assert r.table.track(desc(generic), r.now) == (None, CtInfo.DROP)
    assert r.table.stats.drop == 2


def test_expired_icmp_and_generic_entries_restart():
    r = Router()
    r.send(icmp_pkt("C", 8))
    generic = IP(src="10.0.1.2", dst="10.0.2.2", proto=253) / Raw(b"x")
    r.send(generic)
    assert r.send(icmp_pkt("C", 8), after=31)[1] == CtInfo.NEW
    assert r.send(generic, after=600)[1] == CtInfo.NEW


def test_emptied_buckets_compacted():
    """Deleting entries from many seconds leaves no pile of stale heap entries."""
    r = Router(nf_conntrack_udp_timeout=1000)
    for i in range(300):
        udp_flow(r, 1000 + i)
        r.now += 1
    r.table.flush(r.now)
    assert len(r.table._ticks) <= 64 and r.table._buckets == {}
    assert r.table.next_deadline() == float("inf")


def test_conn_repr():
    ct = udp_flow(Router(), 1000)
    assert repr(ct).startswith("<UdpConn (b'\\n\\x00\\x01\\x02'")
