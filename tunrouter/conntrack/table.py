"""The connection table (kernel: net/netfilter/nf_conntrack_core.c).

How the router uses it, in netfilter's hook order:

    ct, ctinfo = table.track(d, now)      # PREROUTING conntrack (nf_conntrack_in)
    ... raw/mangle/nat/filter rules see ctinfo (and ct) ...
    if accepted and ctinfo == CtInfo.NEW:
        if not table.confirm(ct, now):    # POSTROUTING/INPUT confirm
            drop                          # clash: counted as insert_failed + drop
    ctinfo == CtInfo.DROP: drop, log table.reason ("table full, dropping packet")
    raw NOTRACK: skip track() and use UNTRACKED instead

    table.expire(now) when now >= table.next_deadline()
    table.drain_events() for `conntrack -E`

track() returns (ct, ctinfo).  ct is None for INVALID, UNTRACKED and DROP;
the direction is in ctinfo (>= ESTABLISHED_REPLY means REPLY).  For an
established packet track() costs one dict lookup by tuple, the tracker, and a
tuple comparison to learn the direction.

A NEW entry is not in the table until confirm(): if the first packet is
dropped, nothing remains (the kernel's unconfirmed conntrack).  Further
ORIGINAL packets before any reply are also NEW, with the confirmed entry;
confirm() returns at once for those.  A SYN that reopens a TIME_WAIT/CLOSE
connection (the kernel's -NF_REPEAT) deletes the old entry (a DESTROY event)
and comes back NEW with a fresh, unconfirmed entry: the caller sees an
ordinary NEW.  An RST answering a connection that never had a reply deletes
the entry at once; track() still returns it (marked IPS_DYING, no longer in
the table) so that NAT can translate that RST.

Checksums: with nf_conntrack_checksum=1 (the kernel's default) TCP, UDP and
ICMP checksums are verified on every packet, as the kernel does in
PRE_ROUTING for packets no device vouched for: every packet the router
tracks came from a device.  A bad one is INVALID ("bad checksum").  The
kernel skips packets whose checksum is offloaded or already verified
(skb_csum_unnecessary()): so is a packet whose PacketDesc.csum says its
device left the checksum partial or vouched for it (core.offload).

Expiry: entries sit in one-second buckets keyed by ceil(deadline) (a set
each, so an entry is in exactly one bucket), with a heap of bucket times.  A
refresh only moves ct.deadline; an entry is refiled when its deadline moves
to an earlier second (RST, FIN: rare) or when its bucket comes due and the
deadline has moved later.  expire() therefore touches only the buckets that
are due.  A lookup treats an entry past its deadline as gone, exactly, as the
kernel does (nf_ct_is_expired), so the one-second buckets only delay when a
DESTROY event is sent and memory is freed.

Table full (kernel: __nf_conntrack_alloc -> early_drop): the kernel scans up
to 8 hash buckets from the new tuple's bucket and deletes every non-ASSURED
entry in the first bucket that has one: in effect a few pseudo-random
non-ASSURED entries near the new tuple's hash.  Python's dict has no buckets
to scan, so the approximation is: due entries are reaped first, then the
oldest non-ASSURED entry goes (one per new connection).  Like the kernel's,
it never evicts an ASSURED entry, and fails (the packet is dropped) when it
finds none; unlike the kernel's, it finds one wherever it is in the table,
and it evicts exactly one.  The kernel's GC worker, after a failed early
drop, also evicts ASSURED TCP entries in closing states while the table is
95 % full; that is not emulated: those entries leave at their short timeouts.
One ordering differs too: the kernel makes room (or drops the packet) before
the L4 tracker has looked at the packet; here a packet that could not start
a connection anyway (malformed, a lone FIN, an unsolicited echo reply) is
INVALID first, and evicts nothing.
"""
import heapq
import math
import struct

from tunrouter.conntrack.conn import (
    IPS_ASSURED,
    IPS_CONFIRMED,
    IPS_DYING,
    IPS_EXPECTED,
    IPS_SEEN_REPLY,
    IPS_SRC_NAT,
    Conn,
    CtInfo,
    Help,
)
from tunrouter.conntrack.events import Event, EventType
from tunrouter.conntrack.expect import ExpectTable
from tunrouter.conntrack.proto import (
    KILL,
    REPEAT,
    generic,
    gre,
    icmp_checksum_ok,
    l4_checksum_ok,
)
from tunrouter.conntrack.proto import icmp as icmp_ct
from tunrouter.conntrack.proto import tcp as tcp_ct
from tunrouter.conntrack.proto import udp as udp_ct
from tunrouter.conntrack.settings import Settings
from tunrouter.conntrack.tuple import Dir, Tuple, invert
from tunrouter.core.desc import PacketDesc
from tunrouter.wire import icmp, ipv4

_TCP = struct.Struct("!HHIIBBH").unpack_from         # sport dport seq ack doff flags window
_UDP = struct.Struct("!HHHH").unpack_from            # sport dport length checksum
_ICMP = struct.Struct("!BBxxH").unpack_from          # type code id

_ESTABLISHED = CtInfo.ESTABLISHED
_NEW = CtInfo.NEW
_RELATED = CtInfo.RELATED
_ESTABLISHED_REPLY = CtInfo.ESTABLISHED_REPLY
_INVALID = (None, CtInfo.INVALID)
_DROP = (None, CtInfo.DROP)
UNTRACKED = (None, CtInfo.UNTRACKED)   # what the router uses for NOTRACK packets instead of track()

_tcp_packet = tcp_ct.packet
_tcp_new = tcp_ct.new
_VALID_FLAGS = tcp_ct.VALID_FLAGS
_udp_packet = udp_ct.packet
_UdpConn = udp_ct.UdpConn
_icmp_packet = icmp_ct.packet
_generic_packet = generic.packet
_GRE_PROTO = 47
_TCP_HLEN = 20
# Entries share their port and address objects instead of keeping the ones
# each first packet brought (32 and 48 bytes each): ports come from this
# tuple, addresses from a bounded interning cache.  Only new entries pay.
_PORT = tuple(range(65536))
_ADDR_CACHE_MAX = 65536
_TCP_PROTO, _UDP_PROTO, _ICMP_PROTO = ipv4.PROTO_TCP, ipv4.PROTO_UDP, ipv4.PROTO_ICMP


class Stats:
    """The `conntrack -S` counters of our one CPU (kernel: struct ip_conntrack_stat).

    found           NAT found a tuple it wanted taken (nf_conntrack_tuple_taken)
    invalid         packets that got no entry (INVALID), ICMP errors excepted
    insert          entries confirmed
    insert_failed   confirm found the tuple taken
    drop            packets conntrack itself dropped (table full, failed insert)
    early_drop      entries evicted to make room
    error           ICMP messages that were malformed or related to nothing
    search_restart, clash_resolve, chaintoolong
                    artefacts of the kernel's lockless hash and its CPUs
                    racing; one thread over a dict has none: always 0
    """
    NAMES = ("found", "invalid", "insert", "insert_failed", "drop", "early_drop", "error",
             "search_restart", "clash_resolve", "chaintoolong")
    __slots__ = NAMES

    def __init__(self):
        for name in self.NAMES:
            setattr(self, name, 0)

    def items(self) -> list[tuple[str, int]]:
        return [(name, getattr(self, name)) for name in self.NAMES]


class _Bucket(set):
    """The entries expiring in the second ending at `at` (deadline in (at - 1, at])."""
    __slots__ = ("at",)


class ConnTable:
    """All tracked connections, by the tuple of either direction.

    settings    the sysctls (Settings), changeable at run time
    stats       the `conntrack -S` counters
    events      Events not yet drained; at most events_max, further ones
                are counted in events_lost (a full netlink socket: ENOBUFS)
    reason      why the last packet got INVALID or DROP, in the kernel's
                log words ("invalid tcp flag combination", "SEQ is over
                upper bound ...", "table full, dropping packet")
    """

    def __init__(self, settings: Settings | None = None, events_max: int = 4096):
        self.settings = settings if settings is not None else Settings()
        self.stats = Stats()
        self.events: list[Event] = []
        self.events_max = events_max
        self.events_lost = 0
        self.reason = ""
        self._conns: dict[Tuple, Conn] = {}
        self._count = 0
        self._unassured: dict[Conn, None] = {}       # confirmed, not ASSURED, oldest first
        self._buckets: dict[int, _Bucket] = {}
        self._ticks: list[int] = []                  # heap of bucket times (some stale)
        self._addrs: dict[bytes, bytes] = {}         # address interning, see _tuples()
        self._bysource: dict[tuple, list[Conn]] = {}  # SRC-NATed entries by original source
        self.expects = ExpectTable()

    # -- the packet path ------------------------------------------------------

    def track(self, d: PacketDesc, now: float) -> tuple[Conn | None, CtInfo]:
        """Find or make the entry for d and run its tracker (kernel: nf_conntrack_in).

        d is a validated, reassembled IPv4 PacketDesc.  Never raises on packet
        contents: a malformed L4 header is INVALID.
        """
        buf = d.buf
        off = d.hlen
        n = len(buf) - off
        proto = d.proto
        s = self.settings
        conns = self._conns

        if proto == _TCP_PROTO:
            # kernel: tcp_error
            if n < _TCP_HLEN:
                return self._invalid("truncated packet")
            sport, dport, seq, ack, doff, flags, win = _TCP(buf, off)
            hl = (doff >> 4) << 2
            if hl < _TCP_HLEN or hl > n:
                return self._invalid("truncated packet")
            if s.checksum and not d.csum and not l4_checksum_ok(buf, off, proto):
                return self._invalid("bad checksum")
            if not _VALID_FLAGS[flags]:
                return self._invalid("invalid tcp flag combination")
            key = (d.src, d.dst, proto, sport, dport)
            ct = conns.get(key)
            if ct is not None:
                if ct.deadline > now:
                    direction = 0 if key == ct.orig else 1
                    status = ct.status
                    state = ct.state
                    r = _tcp_packet(ct, direction, seq, ack, flags, win, n - hl,
                                    buf, off + _TCP_HLEN, hl - _TCP_HLEN, now, s)
                    if r is None:
                        # _accepted(), inlined for the common case: nothing
                        # to report, the timer still in the right second.
                        if (ct.status != status or ct.state != state
                                or direction and not status & IPS_SEEN_REPLY):
                            return self._accepted(ct, direction, status, state, now)
                        if ct.deadline + 1 <= ct.timer.at:
                            self._file(ct)
                        if direction:
                            return ct, _ESTABLISHED_REPLY
                        if status & IPS_SEEN_REPLY:
                            return ct, _ESTABLISHED
                        return ct, (_RELATED if status & IPS_EXPECTED else _NEW)
                    if r is not REPEAT:
                        return self._refused(ct, direction, status, r, now)
                # Expired (kernel: nf_ct_is_expired in the lookup), or a SYN
                # reopening a closed connection: delete, then start afresh.
                self._delete(ct, now, ct.deadline <= now)
            ct = _tcp_new(*self._tuples(d, proto, sport, dport), seq, flags, win, n - hl,
                          buf, off + _TCP_HLEN, hl - _TCP_HLEN, s.tcp_loose)
            if ct.__class__ is str:
                return self._invalid(ct)
            if not self._room(now):
                return _DROP
            r = _tcp_packet(ct, 0, seq, ack, flags, win, n - hl,
                            buf, off + _TCP_HLEN, hl - _TCP_HLEN, now, s)
            if r is not None:
                return self._invalid(r)
            return self._new(ct, now)

        if proto == _UDP_PROTO:
            # kernel: udp_error
            if n < 8:
                return self._invalid("short packet")
            sport, dport, length, check = _UDP(buf, off)
            if length > n or length < 8:
                return self._invalid("truncated/malformed packet")
            if check and s.checksum and not d.csum and not l4_checksum_ok(buf, off, proto):
                return self._invalid("bad checksum")
            key = (d.src, d.dst, proto, sport, dport)
            ct = conns.get(key)
            if ct is not None:
                if ct.deadline > now:
                    status = ct.status
                    _udp_packet(ct, now, s)
                    return self._accepted(ct, 0 if key == ct.orig else 1, status, None, now)
                self._delete(ct, now, True)
            if not self._room(now):
                return _DROP
            ct = _UdpConn(*self._tuples(d, proto, sport, dport))
            _udp_packet(ct, now, s)
            return self._new(ct, now)

        if proto == _ICMP_PROTO:
            # kernel: nf_conntrack_icmpv4_error, then the query tracker
            if n < icmp.HLEN:
                return self._error("short packet")
            if s.checksum and not d.csum and not icmp_checksum_ok(buf, off):
                return self._error("bad hw icmp checksum")
            icmp_type, code, ident = _ICMP(buf, off)
            if icmp_type > icmp.NR_TYPES:
                return self._error("invalid icmp type")
            if icmp_type in icmp.ERRORS:
                return self.icmp_error(d, now)
            key = (d.src, d.dst, proto, ident, icmp_type << 8 | code)
            ct = conns.get(key)
            if ct is not None:
                if ct.deadline > now:
                    status = ct.status
                    _icmp_packet(ct, now, s)
                    return self._accepted(ct, 0 if key == ct.orig else 1, status, None, now)
                self._delete(ct, now, True)
            orig = self._tuples(d, proto, ident, icmp_type << 8 | code)[0]
            ct = icmp_ct.new(orig, invert(orig))
            if ct.__class__ is str:
                return self._invalid(ct)
            if not self._room(now):
                return _DROP
            _icmp_packet(ct, now, s)
            return self._new(ct, now)

        other_packet = gre.packet if proto == _GRE_PROTO else _generic_packet
        key = (d.src, d.dst, proto, 0, 0)
        ct = conns.get(key)
        if ct is not None:
            if ct.deadline > now:
                status = ct.status
                other_packet(ct, now, s)
                return self._accepted(ct, 0 if key == ct.orig else 1, status, None, now)
            self._delete(ct, now, True)
        if not self._room(now):
            return _DROP
        ct = Conn(*self._tuples(d, proto, 0, 0))
        other_packet(ct, now, s)
        return self._new(ct, now)

    def icmp_error(self, d: PacketDesc, now: float) -> tuple[Conn | None, CtInfo]:
        """RELATED or INVALID for an ICMP error message (kernel: nf_conntrack_inet_error).

        The quoted header is read, inverted (it travelled the other way) and
        looked up.  The error is RELATED (RELATED_REPLY when the entry was
        found by its reply tuple) only if the outer destination is where that
        direction of the connection goes: an error quoting A<->B must not be
        let through towards a third host.  It neither creates nor refreshes
        an entry.
        """
        inner = icmp_ct.inner_tuple(d.buf, d.hlen + icmp.HLEN)
        if inner is None:
            return self._error("icmp error: quoted packet unreadable")
        wanted = invert(inner)
        if wanted is None:
            return self._error("icmp error: quoted ICMP type has no inverse")
        found = self.lookup(wanted, now)
        if found is None:
            return self._error("icmp error: quotes no tracked connection")
        ct, direction = found
        ct_dst = (ct.reply if direction else ct.orig)[1]
        if d.dst != ct_dst:
            return self._error(f"outer daddr {ipv4.ntoa(d.dst)} != inner {ipv4.ntoa(ct_dst)}")
        return ct, (CtInfo.RELATED_REPLY if direction else CtInfo.RELATED)

    def confirm(self, ct: Conn, now: float) -> bool:
        """Insert a NEW entry once its first packet was accepted (kernel: __nf_conntrack_confirm).

        True when ct is (now) in the table.  False when a live entry holds
        one of its tuples (a NAT-made reply tuple already in use, or a second
        unconfirmed entry for one flow): the packet must be dropped.  The
        deadline runs from track(); the router passes the same now to both.
        """
        status = ct.status
        if status & IPS_CONFIRMED:
            return True
        conns = self._conns
        for key in (ct.orig, ct.reply):
            other = conns.get(key)
            if other is not None:
                if other.deadline > now:
                    self.stats.insert_failed += 1
                    self.stats.drop += 1
                    self.reason = "insert failed: tuple already tracked"
                    return False
                self._delete(other, now, True)
        conns[ct.orig] = ct
        conns[ct.reply] = ct
        if status & IPS_SRC_NAT:
            o = ct.orig
            self._bysource.setdefault((o[0], o[3], o[2]), []).append(ct)
        ct.status = status | IPS_CONFIRMED
        self._count += 1
        self.stats.insert += 1
        self._unassured[ct] = None
        self._file(ct)
        if self.settings.events:
            self._event(EventType.NEW, ct, ct.state, now, False, 0)
        return True

    def _accepted(self, ct: Conn, direction: int, status: int, state, now: float):
        """After the tracker accepted a packet of a confirmed entry (end of nf_conntrack_in)."""
        if direction:
            ctinfo = _ESTABLISHED_REPLY
            if not status & IPS_SEEN_REPLY:
                ct.status |= IPS_SEEN_REPLY
        else:
            ctinfo = _ESTABLISHED if status & IPS_SEEN_REPLY else (
                _RELATED if status & IPS_EXPECTED else _NEW)
        if ct.status != status or ct.state != state:
            if (ct.status ^ status) & IPS_ASSURED:
                self._unassured.pop(ct, None)
            if self.settings.events:
                new_state = ct.state
                self._event(EventType.UPDATE, ct, new_state if new_state != state else None,
                            now, False, 0)
        if ct.deadline + 1 <= ct.timer.at:
            self._file(ct)               # moved to an earlier second
        return ct, ctinfo

    def _refused(self, ct: Conn, direction: int, status: int, r: str, now: float):
        """The tracker said KILL or INVALID for a packet of a confirmed entry."""
        if r is KILL:
            self._delete(ct, now, False)
            if direction:
                return ct, _ESTABLISHED_REPLY
            return ct, (_ESTABLISHED if status & IPS_SEEN_REPLY else (
                _RELATED if status & IPS_EXPECTED else _NEW))
        if ct.deadline + 1 <= ct.timer.at:
            self._file(ct)               # nf_tcp_handle_invalid shortened the timeout
        return self._invalid(r)

    def _new(self, ct: Conn, now: float) -> tuple[Conn, CtInfo]:
        """A new, unconfirmed entry: RELATED when an expectation foresaw it (init_conntrack)."""
        if self.settings.acct:
            ct.acct = [0, 0, 0, 0]
        if not self.expects.count:
            return ct, _NEW
        exp = self.expects.take(ct.orig, now)
        if exp is None:
            return ct, _NEW
        master = exp.master
        ct.status |= IPS_EXPECTED
        ct.mark = master.mark
        ct.help = Help(master=master)
        if exp.expectfn is not None:
            exp.expectfn(ct, exp, now)
        return ct, _RELATED

    def _invalid(self, reason: str) -> tuple[None, CtInfo]:
        self.stats.invalid += 1
        self.reason = reason
        return _INVALID

    def _error(self, reason: str) -> tuple[None, CtInfo]:
        """An ICMP message conntrack refuses: counted as `error`, not `invalid`, as the kernel does."""
        self.stats.error += 1
        self.reason = reason
        return _INVALID

    def _room(self, now: float) -> bool:
        """Whether one more entry fits, evicting one if needed (kernel: __nf_conntrack_alloc)."""
        limit = self.settings.max
        if not limit or self._count < limit:
            return True
        self.expire(now)
        if self._count < limit:
            return True
        if self._unassured:
            self._delete(next(iter(self._unassured)), now, False)
            self.stats.early_drop += 1
            return True
        self.stats.drop += 1
        self.reason = "table full, dropping packet"
        return False

    def _tuples(self, d: PacketDesc, proto: int, sport: int, dport: int) -> tuple[Tuple, Tuple]:
        """The tuples of a new entry, built from shared port and address objects.

        A new entry keeps its tuples for its whole life; the ports then cost
        nothing and an address is shared by every entry of its host (the
        cache is emptied when full, which only loses sharing).
        """
        addrs = self._addrs
        src = addrs.get(d.src)
        if src is None:
            if len(addrs) >= _ADDR_CACHE_MAX:
                addrs.clear()
            src = addrs[d.src] = d.src
        dst = addrs.get(d.dst)
        if dst is None:
            dst = addrs[d.dst] = d.dst
        sport = _PORT[sport]
        dport = _PORT[dport]
        return (src, dst, proto, sport, dport), (dst, src, proto, dport, sport)

    # -- what NAT asks of the table (kernel: nf_nat_core.c) ---------------------

    def taken(self, t: Tuple, ct: Conn, now: float) -> bool:
        """Whether a live entry other than ct holds tuple t (nf_conntrack_tuple_taken)."""
        other = self._conns.get(t)
        if other is None or other is ct or other.deadline <= now:
            return False
        self.stats.found += 1
        return True

    def source_mappings(self, src: bytes, sport: int, proto: int) -> list[Conn]:
        """The SRC-NATed entries whose original tuple starts at src:sport (the "bysource" hash)."""
        return self._bysource.get((src, sport, proto), ())

    def intern(self, t: Tuple) -> Tuple:
        """t rebuilt from the table's shared address and port objects (see _tuples)."""
        addrs = self._addrs
        src, dst, proto, sport, dport = t
        if len(addrs) >= _ADDR_CACHE_MAX:
            addrs.clear()
        return (addrs.setdefault(src, src), addrs.setdefault(dst, dst), proto,
                _PORT[sport], _PORT[dport])

    def nat_failed(self) -> None:
        """NAT found no free tuple: the kernel's clash at confirm, counted as it counts it."""
        self.stats.insert_failed += 1
        self.stats.drop += 1
        self.reason = "NAT: no free tuple in the range"

    # -- lookups and the control interface ------------------------------------

    def lookup(self, t: Tuple, now: float) -> tuple[Conn, Dir] | None:
        """The live entry holding tuple t in either direction, and that direction."""
        ct = self._conns.get(t)
        if ct is None:
            return None
        if ct.deadline <= now:
            self._delete(ct, now, True)
            return None
        return ct, (Dir.ORIGINAL if t == ct.orig else Dir.REPLY)

    def entries(self) -> list[Conn]:
        """Every entry in the table, expired or not, the table unchanged (a helper reload)."""
        return [ct for key, ct in self._conns.items() if key is ct.orig]

    def conns(self, now: float, match=None) -> list[Conn]:
        """The live entries, optionally those match(ct) selects (`conntrack -L`).

        match is any predicate over a Conn, e.g. filter.make_filter()'s for
        conntrack(8)'s options.
        """
        self.expire(now)
        return [ct for key, ct in self._conns.items()
                if key is ct.orig and ct.deadline > now and (match is None or match(ct))]

    def delete(self, match, now: float, *, portid: int = 0) -> int:
        """Delete the live entries match(ct) selects (`conntrack -D`); returns how many.

        portid is the netlink port id of the requesting process, shown in
        the DESTROY events as `[USERSPACE] portid=`.
        """
        victims = self.conns(now, match)
        for ct in victims:
            self._delete(ct, now, False, portid)
        return len(victims)

    def kill(self, ct: Conn, now: float) -> None:
        """Delete one entry the packet path gave up on (kernel: nf_ct_kill)."""
        if not ct.status & IPS_DYING and ct.status & IPS_CONFIRMED:
            self._delete(ct, now, False)

    def flush(self, now: float, *, portid: int = 0) -> int:
        """Delete every entry (`conntrack -F`); returns how many."""
        return self.delete(None, now, portid=portid)

    def count(self) -> int:
        """Entries in the table (`conntrack -C`, nf_conntrack_count).

        Like the kernel's count, it includes entries past their deadline that
        expire() has not removed yet.
        """
        return self._count

    def drain_events(self) -> list[Event]:
        """The events since the last call, oldest first."""
        events = self.events
        self.events = []
        return events

    # -- expiry ---------------------------------------------------------------

    def next_deadline(self) -> float:
        """When expire() next has something to do (math.inf: never).

        That is the time of the earliest bucket: its entries either expire
        then or, refreshed meanwhile, are refiled then.
        """
        ticks = self._ticks
        while ticks and ticks[0] not in self._buckets:
            heapq.heappop(ticks)         # the bucket was emptied and dropped
        first = ticks[0] if ticks else math.inf
        return min(first, self.expects.next_deadline()) if self.expects.count else first

    def expire(self, now: float) -> int:
        """Delete the entries whose deadline has passed; returns how many.

        Only buckets that are due are visited; an entry in one whose deadline
        has moved later is refiled, once, under its new second.
        """
        ticks = self._ticks
        buckets = self._buckets
        expired = 0
        if self.expects.count:
            self.expects.expire(now)
        while ticks and ticks[0] <= now:
            bucket = buckets.pop(heapq.heappop(ticks), None)
            if bucket is None:
                continue                 # emptied and dropped earlier
            for ct in bucket:
                ct.timer = None
                if ct.deadline <= now:
                    self._delete(ct, now, True)
                    expired += 1
                else:
                    self._file(ct)
        return expired

    def _file(self, ct: Conn) -> None:
        """Put ct in the bucket of its deadline's second, out of its old one."""
        at = math.ceil(ct.deadline)
        bucket = self._buckets.get(at)
        if bucket is None:
            bucket = self._buckets[at] = _Bucket()
            bucket.at = at
            heapq.heappush(self._ticks, at)
        self._unfile(ct)
        bucket.add(ct)
        ct.timer = bucket

    def _unfile(self, ct: Conn) -> None:
        bucket = ct.timer
        if bucket is None:
            return
        bucket.discard(ct)
        ct.timer = None
        if not bucket:
            # Drop the empty bucket now (a long-timeout bucket could otherwise
            # sit empty for days); its heap entry goes stale.  Rebuild the
            # heap when stale entries outnumber live ones.
            self._buckets.pop(bucket.at, None)
            if len(self._ticks) > 2 * len(self._buckets) + 64:
                self._ticks = list(self._buckets)
                heapq.heapify(self._ticks)

    def _delete(self, ct: Conn, now: float, expired: bool, portid: int = 0) -> None:
        """Remove a confirmed entry and report it (kernel: nf_ct_delete)."""
        conns = self._conns
        if conns.get(ct.orig) is ct:
            del conns[ct.orig]
        if conns.get(ct.reply) is ct:
            del conns[ct.reply]
        if ct.help is not None and ct.help.expects:
            self.expects.remove_master(ct)
        if ct.status & IPS_SRC_NAT:
            o = ct.orig
            key = (o[0], o[3], o[2])
            same = self._bysource.get(key)
            if same is not None and ct in same:
                same.remove(ct)
                if not same:
                    del self._bysource[key]
        ct.status |= IPS_DYING
        self._unfile(ct)
        self._unassured.pop(ct, None)
        self._count -= 1
        if self.settings.events:
            self._event(EventType.DESTROY, ct, ct.state, now, expired, portid)

    def _event(self, kind: EventType, ct: Conn, state, now: float, expired: bool,
               portid: int) -> None:
        events = self.events
        if len(events) >= self.events_max:
            self.events_lost += 1
            return
        remaining = int(ct.deadline - now) if ct.deadline > now else 0
        if kind is EventType.DESTROY and (expired or remaining == 0):
            timeout = None               # ctnetlink skips a zero timeout on destroy
        else:
            timeout = remaining
        events.append(Event(kind, ct.orig, ct.reply, ct.status, state, timeout, ct.mark, portid))
