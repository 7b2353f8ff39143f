"""Expected connections (kernel: net/netfilter/nf_conntrack_expect.c).

A helper that reads "the peer will connect to me on port P" in a
connection's payload registers an expectation: a tuple whose destination and
protocol are exact and whose source address and port may be wildcards.  The
first new connection matching it becomes RELATED to the master, inherits
its mark, and (when the master is translated) follows the master's NAT.  An
expectation is used once, dies on its timeout, and dies with its master.

Limits as the kernel's: per master and helper policy, max_expected live at
once (registering one more evicts the oldest); across the table,
nf_conntrack_expect_max ("expectation table full").  Registering the same
tuple again from the same master replaces the old one; a tuple that another
master expects, or that overlaps one, is refused as busy (NAT then tries
another port).
"""
import math

from tunrouter.conntrack.tuple import Tuple

# kernel errno names for what add() refuses
BUSY, FULL = "busy", "expectation table full"
NEW, DESTROY = "NEW", "DESTROY"      # expectation events (IPEXP_NEW, IPEXP_DESTROY)
EVENTS_MAX = 4096


class Expectation:
    """src/sport None: any.  saved_port: the port the payload announced (NAT maps the
    expected connection back to it); dir: the direction the expected connection
    travels relative to the master's tuples (nf_conntrack_expect.dir); expectfn:
    called with the new connection, the expectation and the time when it is used
    (NAT's nf_nat_follow_master), or None."""
    __slots__ = (
        "deadline",
        "dir",
        "dport",
        "dst",
        "expectfn",
        "helper",
        "master",
        "proto",
        "saved_port",
        "sport",
        "src",
    )

    def __init__(self, proto: int, src: bytes | None, sport: int | None, dst: bytes, dport: int,
                 master, helper, deadline: float, saved_port: int, direction: int,
                 expectfn=None):
        self.proto, self.src, self.sport, self.dst, self.dport = proto, src, sport, dst, dport
        self.master, self.helper, self.deadline = master, helper, deadline
        self.saved_port, self.dir, self.expectfn = saved_port, direction, expectfn

    def matches(self, t: Tuple) -> bool:
        return ((self.src is None or self.src == t[0]) and (self.sport is None or self.sport == t[3])
                and t[1] == self.dst and t[4] == self.dport and t[2] == self.proto)

    def overlaps(self, other: "Expectation") -> bool:
        """Some tuple would match both (nf_ct_expect_clash under the masks' intersection)."""
        return (self.proto == other.proto and self.dst == other.dst and self.dport == other.dport
                and (self.src is None or other.src is None or self.src == other.src)
                and (self.sport is None or other.sport is None or self.sport == other.sport))

    def same(self, other: "Expectation") -> bool:
        return (self.proto, self.src, self.sport, self.dst, self.dport) == \
               (other.proto, other.src, other.sport, other.dst, other.dport)


class ExpectTable:
    """Live expectations by (dst, dport, proto): a lookup per new connection costs one dict probe."""

    def __init__(self):
        self._by_dst: dict[tuple, list[Expectation]] = {}
        self.count = 0
        self.stats_new = self.stats_create = self.stats_delete = 0
        self.events: list[tuple[str, Expectation]] = []   # for `conntrack -E expect`
        self.events_lost = 0
        self._next = math.inf

    def add(self, exp: Expectation, max_expected: int, table_max: int) -> str | None:
        """Register exp for its master; None, or why not (BUSY, FULL)."""
        key = (exp.dst, exp.dport, exp.proto)
        for old in list(self._by_dst.get(key, ())):
            if old.same(exp) and old.master is exp.master and old.helper is exp.helper:
                self.remove(old)
            elif old.overlaps(exp):
                return BUSY
        mine = [e for e in exp.master.help.expects if e.helper is exp.helper]
        if max_expected and len(mine) >= max_expected:
            self.remove(mine[0])                 # evict_oldest_expect
        if self.count >= table_max:
            return FULL
        self._by_dst.setdefault(key, []).append(exp)
        exp.master.help.expects.append(exp)
        self.count += 1
        self.stats_create += 1
        self._event(NEW, exp)
        self._next = min(self._next, exp.deadline)
        return None

    def take(self, t: Tuple, now: float) -> Expectation | None:
        """The live expectation tuple t fulfils, removed (used once), or None.

        Only a master still in the table counts (nf_ct_find_expectation).
        """
        for exp in self._by_dst.get((t[1], t[4], t[2]), ()):
            if exp.matches(t) and exp.deadline > now and exp.master.deadline > now:
                self.remove(exp)
                self.stats_new += 1
                return exp
        return None

    def remove(self, exp: Expectation) -> None:
        key = (exp.dst, exp.dport, exp.proto)
        same = self._by_dst.get(key)
        if same is None or exp not in same:
            return
        same.remove(exp)
        if not same:
            del self._by_dst[key]
        exp.master.help.expects.remove(exp)
        self.count -= 1
        self.stats_delete += 1
        self._event(DESTROY, exp)

    def _event(self, kind: str, exp: Expectation) -> None:
        if len(self.events) >= EVENTS_MAX:
            self.events_lost += 1
            return
        self.events.append((kind, exp))

    def drain_events(self) -> list[tuple[str, Expectation]]:
        events, self.events = self.events, []
        return events

    def remove_master(self, master) -> None:
        """The master is gone: so are its expectations (nf_ct_remove_expectations)."""
        for exp in list(master.help.expects):
            self.remove(exp)

    def next_deadline(self) -> float:
        return self._next if self.count else math.inf

    def expire(self, now: float) -> None:
        if now < self._next:
            return
        nxt = math.inf
        for exp in [e for same in self._by_dst.values() for e in same]:
            if exp.deadline <= now:
                self.remove(exp)
            else:
                nxt = min(nxt, exp.deadline)
        self._next = nxt

    def all(self, now: float) -> list[Expectation]:
        self.expire(now)
        return [e for same in self._by_dst.values() for e in same]
