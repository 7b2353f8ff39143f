"""-m recent: lists of recently seen addresses (kernel xt_recent.c).

A table per --name, shared by every rule that names it and kept across a
reload as long as a rule still names it.  Each entry holds the last
timestamps (a ring of nstamps_max_mask + 1 jiffies values), the TTL of the
packet that created or last updated it, and its place in the table's LRU
order; a table holds ip_list_tot = 200 entries and drops the least recently
updated one to make room.  Module defaults: ip_list_tot 200, ip_pkt_list_tot 20.
"""
from dataclasses import dataclass

from tunrouter.rules.base import Match, Opt, Opts, RuleInfo
from tunrouter.rules.errors import OptionError
from tunrouter.rules.state import HZ, jiffies
from tunrouter.rules.values import U32, format_ipv4, parse_mask, parse_uint

IP_LIST_TOT = 200
IP_PKT_LIST_TOT = 20
MAX_NSTAMPS = 256            # XT_RECENT_MAX_NSTAMPS: --hitcount stays below it
NAME_MAX = 199               # XT_RECENT_NAME_LEN - 1
COMMANDS = ("set", "rcheck", "update", "remove")


def _nstamps_mask(hitcount: int) -> int:
    """recent_mt_check(): the ring holds the next power of two of max(hitcount, 20)."""
    n = max(hitcount, IP_PKT_LIST_TOT)
    return (1 << (n - 1).bit_length()) - 1


class RecentEntry:
    __slots__ = ("stamps", "index", "ttl")

    def __init__(self, now: int, ttl: int):
        self.stamps = [now]
        self.index = 1
        self.ttl = ttl


class RecentTable:
    """One --name table: masked address -> RecentEntry, in LRU order (oldest first)."""

    def __init__(self, mask: int):
        self.config = None           # any rule naming the table may share it (StateStore)
        self.mask = mask             # nstamps_max_mask
        self.entries: dict[int, RecentEntry] = {}

    def grow(self, mask: int) -> None:
        """A rule wanting a longer ring flushes the table (kernel: recent_table_flush)."""
        if mask > self.mask:
            self.entries.clear()
            self.mask = mask

    def lookup(self, addr: int, ttl: int) -> RecentEntry | None:
        e = self.entries.get(addr)
        if e is not None and (ttl == e.ttl or ttl == 0 or e.ttl == 0):
            return e
        return None

    def insert(self, addr: int, now: int, ttl: int) -> None:
        if len(self.entries) >= IP_LIST_TOT:
            del self.entries[next(iter(self.entries))]
        self.entries.pop(addr, None)
        self.entries[addr] = RecentEntry(now, ttl)

    def update(self, addr: int, e: RecentEntry, now: int) -> None:
        """recent_entry_update(): next ring slot, and to the young end of the LRU list."""
        e.index &= self.mask
        if e.index < len(e.stamps):
            e.stamps[e.index] = now
        else:
            e.stamps.append(now)
        e.index += 1
        del self.entries[addr]
        self.entries[addr] = e


class _RecentCheck:
    __slots__ = ("table", "m")

    def __init__(self, table: RecentTable, m: "RecentMatch"):
        self.table, self.m = table, m

    def __call__(self, ctx) -> bool:
        """kernel recent_mt(), step for step."""
        m, t = self.m, self.table
        addr = (ctx.daddr if m.rdest else ctx.saddr) & m.mask
        ttl = ctx.desc.ttl
        if ctx.out_name and not ctx.local:
            ttl += 1                      # "use TTL as seen before forwarding"
        now = jiffies(ctx.now)
        ret = m.inv
        e = t.lookup(addr, ttl if m.rttl else 0)
        if e is None:
            if m.cmd != "set":
                return ret
            t.insert(addr, now, ttl)
            return not ret
        if m.cmd == "set":
            ret = not ret
        elif m.cmd == "remove":
            del t.entries[addr]
            return not ret
        else:
            since = now - m.seconds * HZ
            hits = 0
            for stamp in e.stamps:
                if m.seconds and since > stamp:
                    continue
                hits += 1
                if not m.hitcount or hits >= m.hitcount:
                    ret = not ret
                    break
            if m.reap:
                self._reap(since, e, m.cmd == "update" and ret)
        # The kernel tests ret after inversion here, so `! --update` updates on a miss.
        if m.cmd == "set" or (m.cmd == "update" and ret):
            t.update(addr, e, now)
            e.ttl = ttl
        return ret

    def _reap(self, since: int, working: RecentEntry, updating: bool) -> None:
        """recent_entry_reap(): drop the oldest entry if its newest stamp is too old."""
        t = self.table
        oldest_addr = next(iter(t.entries))
        oldest = t.entries[oldest_addr]
        if oldest is working and updating:
            return
        if since > oldest.stamps[oldest.index - 1]:
            del t.entries[oldest_addr]


@dataclass(frozen=True, slots=True)
class RecentMatch(Match):
    cmd: str
    inv: bool = False
    seconds: int = 0
    reap: bool = False
    hitcount: int = 0
    rttl: bool = False
    table: str = "DEFAULT"
    mask: int = U32
    rdest: bool = False

    name = "recent"
    OPTIONS = {**{f"--{c}": Opt(c, nargs=0, inv=True) for c in COMMANDS},
               "--seconds": Opt("seconds"), "--reap": Opt("reap", nargs=0),
               "--hitcount": Opt("hitcount"), "--rttl": Opt("rttl", nargs=0),
               "--name": Opt("name"), "--rsource": Opt("rsource", nargs=0),
               "--rdest": Opt("rdest", nargs=0), "--mask": Opt("mask")}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "RecentMatch":
        cmd = opts.exclusive(*COMMANDS)
        if cmd is None:
            raise OptionError("recent: one of --set, --rcheck, --update, --remove is required")
        seconds = parse_uint(opts.get("seconds", "0"), 0, U32, "--seconds")
        hitcount = parse_uint(opts.get("hitcount", "0"), 0, MAX_NSTAMPS - 1, "--hitcount")
        if "reap" in opts and not seconds:
            raise OptionError('recent: option "--reap" also requires "--seconds"')
        if cmd in ("set", "remove") and (seconds or hitcount or "rttl" in opts or "reap" in opts):
            raise OptionError(f"recent: --{cmd} takes none of "
                              "--seconds, --hitcount, --rttl, --reap")
        name = opts.get("name", "DEFAULT")
        if not name or len(name) > NAME_MAX or "/" in name:
            raise OptionError(f'recent: bad table name "{name}"')
        side = opts.exclusive("rsource", "rdest")
        return cls(cmd, opts.inv(cmd), seconds, "reap" in opts, hitcount, "rttl" in opts, name,
                   parse_mask(opts.get("mask", "255.255.255.255")), side == "rdest")

    def save(self) -> str:
        out = [f"{'! ' if self.inv else ''}--{self.cmd}"]
        if self.seconds:
            out.append(f"--seconds {self.seconds}")
        if self.reap:
            out.append("--reap")
        if self.hitcount:
            out.append(f"--hitcount {self.hitcount}")
        if self.rttl:
            out.append("--rttl")
        out += [f"--name {self.table}", f"--mask {format_ipv4(self.mask)}",
                "--rdest" if self.rdest else "--rsource"]
        return " ".join(out)

    def compile(self, state):
        mask = _nstamps_mask(self.hitcount)
        table = state.named("recent", self.table, None, lambda: RecentTable(mask))
        table.grow(mask)
        return _RecentCheck(table, self)
