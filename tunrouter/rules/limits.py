"""Rate and connection limits: -m limit, -m hashlimit, -m connlimit.

The arithmetic is the kernel's, in its units, so that the numbers a test
sees are the kernel's numbers:

* xt_limit.c: a bucket of credits per rule.  CREDITS_PER_JIFFY is the
  largest power of two below 2**32 / (HZ * seconds per day) (128 at HZ=250);
  userspace passes the average interval in 1/10000 s (XT_LIMIT_SCALE);
  user2credits(x) = x * HZ * CREDITS_PER_JIFFY / 10000.  The bucket starts
  full at user2credits(avg * burst); each packet costs user2credits(avg);
  each jiffy adds CREDITS_PER_JIFFY, up to the cap.  So `--limit 10/s
  --limit-burst 100` passes 100 packets at once, then one per 25 jiffies.
  Deviation: xt_limit multiplies avg * burst in 32 bits and refuses a
  rule when that overflows (1/day with burst 5); iptables-nft accepts such a
  rule, and so do we, computing in Python integers.
* xt_hashlimit.c revision 3: the same bucket per hash key, intervals in
  microseconds, CREDITS_PER_JIFFY a 64-bit power of two; entries expire
  htable-expire ms after their last packet and are collected every
  gcinterval ms; at htable-max entries a new key is dropped (hotdrop).
* xt_connlimit.c over nf_conncount: per rule and per masked address, the
  connections that passed this rule and are still alive, this one included.
"""
from dataclasses import dataclass

from tunrouter.rules.base import Match, Opt, Opts, RuleInfo
from tunrouter.rules.context import HotDrop
from tunrouter.rules.errors import OptionError
from tunrouter.rules.state import HZ, jiffies, msecs_to_jiffies
from tunrouter.rules.values import U32, format_rate, parse_rate, parse_uint, prefix_mask

# ------------------------------------------------------------------ limit

XT_LIMIT_SCALE = 10000
LIMIT_BURST_DEFAULT = 5
LIMIT_BURST_MAX = 10000
LIMIT_AVG_DEFAULT = XT_LIMIT_SCALE * 3600 // 3     # iptables' default rate: 3/hour
CREDITS_PER_JIFFY = 1 << ((U32 // (HZ * 86400)).bit_length() - 1)   # 128 at HZ=250


def user2credits(user: int) -> int:
    """xt_limit user2credits(): divide first when multiplying would overflow 32 bits."""
    if user > U32 // (HZ * CREDITS_PER_JIFFY):
        return (user // XT_LIMIT_SCALE) * HZ * CREDITS_PER_JIFFY
    return user * HZ * CREDITS_PER_JIFFY // XT_LIMIT_SCALE


class LimitBucket:
    """One xt_limit rule's state (struct xt_limit_priv + the rule's credit_cap and cost)."""
    __slots__ = ("credit", "cap", "cost", "prev")

    def __init__(self, avg: int, burst: int):
        self.credit = self.cap = user2credits(avg * burst)
        self.cost = user2credits(avg)
        self.prev: int | None = None          # jiffies of the last packet

    def __call__(self, ctx) -> bool:
        now = jiffies(ctx.now)
        if self.prev is not None:
            self.credit = min(self.cap, self.credit + (now - self.prev) * CREDITS_PER_JIFFY)
        self.prev = now
        if self.credit >= self.cost:
            self.credit -= self.cost
            return True
        return False


@dataclass(frozen=True, slots=True)
class LimitMatch(Match):
    """-m limit: avg is the interval between packets in 1/10000 s."""
    avg: int
    burst: int = LIMIT_BURST_DEFAULT

    name = "limit"
    OPTIONS = {"--limit": Opt("limit"), "--limit-burst": Opt("burst")}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "LimitMatch":
        avg = LIMIT_AVG_DEFAULT
        if "limit" in opts:
            avg, _unit = parse_rate(opts.get("limit"), XT_LIMIT_SCALE)
        burst = parse_uint(opts.get("burst", str(LIMIT_BURST_DEFAULT)), 1, LIMIT_BURST_MAX,
                           "--limit-burst")
        return cls(avg, burst)

    def save(self) -> str:
        text = f"--limit {format_rate(self.avg, XT_LIMIT_SCALE)[0]}"
        if self.burst != LIMIT_BURST_DEFAULT:
            text += f" --limit-burst {self.burst}"
        return text

    def compile(self, state):
        return state(lambda: LimitBucket(self.avg, self.burst))


# ------------------------------------------------------------------ hashlimit

XT_HASHLIMIT_SCALE_V2 = 1_000_000
HASHLIMIT_BURST_DEFAULT = 5
HASHLIMIT_BURST_MAX = 10000
LIMIT_AVG_DEFAULT = XT_LIMIT_SCALE * 3600 // 3     # iptables' default rate: 3/hour
HASHLIMIT_GC_DEFAULT = 1000                  # ms
HASHLIMIT_NAME_MAX = 254                     # xt_hashlimit_mtinfo3.name[NAME_MAX]
# Revision 2+: CREDITS_PER_JIFFY is the largest power of two below 2**64 / (HZ * day).
HASHLIMIT_CPJ = 1 << (((1 << 64) - 1) // (HZ * 86400)).bit_length() - 1
# A table of the default size, as the kernel sizes it on machines with more
# than 1 GiB: 8192 buckets and max = 8 * size entries.
HASHLIMIT_SIZE_DEFAULT = 8192

# --hashlimit-mode names in libxt_hashlimit's print order.
MODE_SRCIP, MODE_SRCPORT, MODE_DSTIP, MODE_DSTPORT = 1, 2, 4, 8
HASHLIMIT_MODES = {"srcip": MODE_SRCIP, "srcport": MODE_SRCPORT,
                   "dstip": MODE_DSTIP, "dstport": MODE_DSTPORT}
# Protocols whose first 4 L4 bytes are the ports (kernel proto_ports_offset() == 0).
_PORT_PROTOS = frozenset({6, 17, 33, 50, 132, 136})


def hashlimit_credits(user: int) -> int:
    """xt_hashlimit user2credits() for revision 2+: HZ * CPJ exceeds the scale, so multiply."""
    return user * (HZ * HASHLIMIT_CPJ // XT_HASHLIMIT_SCALE_V2)


@dataclass(frozen=True, slots=True)
class HashlimitConfig:
    """What a hashlimit table is built from (kernel: struct hashlimit_cfg3)."""
    avg: int
    burst: int
    mode: int
    srcmask: int
    dstmask: int
    size: int
    max: int
    gcinterval: int
    expire: int


class HashlimitTable:
    """One named hashlimit table: key -> [credit, prev jiffies, expiry jiffies]."""

    def __init__(self, config: HashlimitConfig):
        self.config = config
        size = config.size or HASHLIMIT_SIZE_DEFAULT
        self.max = config.max or 8 * size
        self.max = max(self.max, size)            # kernel: max below size is raised to size
        self.cost = hashlimit_credits(config.avg)
        self.cap = hashlimit_credits(config.avg * config.burst)
        self.gc_every = msecs_to_jiffies(config.gcinterval)
        self.expire = msecs_to_jiffies(config.expire)
        self.next_gc: int | None = None
        self.srcmask = prefix_mask(config.srcmask)
        self.dstmask = prefix_mask(config.dstmask)
        self.entries: dict[tuple, list[int]] = {}

    def key(self, ctx) -> tuple | None:
        """kernel hashlimit_init_dst(); None when the ports cannot be read (hotdrop)."""
        mode = self.config.mode
        src = ctx.saddr & self.srcmask if mode & MODE_SRCIP else 0
        dst = ctx.daddr & self.dstmask if mode & MODE_DSTIP else 0
        sport = dport = 0
        if mode & (MODE_SRCPORT | MODE_DSTPORT) and ctx.proto in _PORT_PROTOS:
            d = ctx.desc
            if len(d.buf) < d.hlen + 4:
                return None
            if mode & MODE_SRCPORT:
                sport = (d.buf[d.hlen] << 8) | d.buf[d.hlen + 1]
            if mode & MODE_DSTPORT:
                dport = (d.buf[d.hlen + 2] << 8) | d.buf[d.hlen + 3]
        return (src, dst, sport, dport)

    def _gc(self, now: int) -> None:
        """htable_gc(): every gcinterval, drop entries whose expiry has come.

        Runs lazily: the sweeps due since the last packet collapse into one at
        the last due time, which removes exactly what they would have.
        """
        if self.next_gc is None:
            self.next_gc = now + self.gc_every
            return
        if now < self.next_gc:
            return
        due = self.next_gc + (now - self.next_gc) // self.gc_every * self.gc_every
        self.entries = {k: e for k, e in self.entries.items() if e[2] > due}
        self.next_gc = due + self.gc_every

    def allow(self, ctx) -> bool | None:
        """Under the limit: True; over: False; unreadable or table full: None (hotdrop)."""
        now = jiffies(ctx.now)
        self._gc(now)
        key = self.key(ctx)
        if key is None:
            return None
        entry = self.entries.get(key)
        if entry is None:
            if len(self.entries) >= self.max:
                return None
            entry = self.entries[key] = [self.cap, now, now + self.expire]
        else:
            entry[2] = now + self.expire
            entry[0] = min(self.cap, entry[0] + (now - entry[1]) * HASHLIMIT_CPJ)
            entry[1] = now
        if entry[0] >= self.cost:
            entry[0] -= self.cost
            return True
        return False


class _HashlimitCheck:
    """A rule's view of a shared table: its own upto/above on the table's buckets."""
    __slots__ = ("table", "above")

    def __init__(self, table: HashlimitTable, above: bool):
        self.table, self.above = table, above

    def __call__(self, ctx) -> bool:
        under = self.table.allow(ctx)
        if under is None:
            raise HotDrop
        return under != self.above


@dataclass(frozen=True, slots=True)
class HashlimitMatch(Match):
    """-m hashlimit, revision 3 (packet rates; byte rates are refused)."""
    name_: str
    config: HashlimitConfig
    above: bool = False
    unit: int = 1                          # seconds of the unit the rate was written in

    name = "hashlimit"
    OPTIONS = {"--hashlimit-upto": Opt("upto", inv=True), "--hashlimit": Opt("upto", inv=True),
               "--hashlimit-above": Opt("above", inv=True),
               "--hashlimit-burst": Opt("burst"), "--hashlimit-mode": Opt("mode"),
               "--hashlimit-name": Opt("name"), "--hashlimit-srcmask": Opt("srcmask"),
               "--hashlimit-dstmask": Opt("dstmask"),
               "--hashlimit-htable-size": Opt("size"), "--hashlimit-htable-max": Opt("max"),
               "--hashlimit-htable-gcinterval": Opt("gcinterval"),
               "--hashlimit-htable-expire": Opt("expire")}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "HashlimitMatch":
        which = opts.exclusive("upto", "above")
        if which is None:
            raise OptionError("hashlimit: --hashlimit-upto or --hashlimit-above is required")
        opts.require("name", "hashlimit", "--hashlimit-name")
        rate = opts.get(which)
        if "b" in rate.lower().split("/")[0]:
            raise OptionError(f'hashlimit: byte rates ("{rate}") are not supported')
        avg, unit = parse_rate(rate, XT_HASHLIMIT_SCALE_V2, (1 << 64) - 1)
        name = opts.get("name")
        if not name or len(name) > HASHLIMIT_NAME_MAX:
            raise OptionError(f"hashlimit: name must be 1 to {HASHLIMIT_NAME_MAX} characters")
        mode = 0
        if "mode" in opts:
            for word in opts.get("mode").split(","):
                if word not in HASHLIMIT_MODES:
                    raise OptionError(f'unknown hashlimit mode "{word}"')
                mode |= HASHLIMIT_MODES[word]
        config = HashlimitConfig(
            avg=avg,
            burst=parse_uint(opts.get("burst", str(HASHLIMIT_BURST_DEFAULT)), 1,
                             HASHLIMIT_BURST_MAX, "--hashlimit-burst"),
            mode=mode,
            srcmask=parse_uint(opts.get("srcmask", "32"), 0, 32, "--hashlimit-srcmask"),
            dstmask=parse_uint(opts.get("dstmask", "32"), 0, 32, "--hashlimit-dstmask"),
            size=parse_uint(opts.get("size", "0"), 0, U32, "--hashlimit-htable-size"),
            max=parse_uint(opts.get("max", "0"), 0, U32, "--hashlimit-htable-max"),
            gcinterval=parse_uint(opts.get("gcinterval", str(HASHLIMIT_GC_DEFAULT)), 1, U32,
                                  "--hashlimit-htable-gcinterval"),
            # libxt_hashlimit: the default expiry is the rate's unit, in ms.
            expire=parse_uint(opts.get("expire", str(unit * 1000)), 1, U32,
                              "--hashlimit-htable-expire"))
        # hashlimit_mt_check_common(): the credits are u64; refuse what overflows (-ERANGE).
        u64 = (1 << 64) - 1
        if hashlimit_credits(config.avg * config.burst & u64) & u64 < \
                hashlimit_credits(config.avg) & u64:
            raise OptionError(f'hashlimit: rate "{rate}" with burst {config.burst} overflows '
                              "the kernel's credit counter")
        return cls(name, config, (which == "above") != opts.inv(which), unit)

    def save(self) -> str:
        c = self.config
        rate, printed_unit = format_rate(c.avg, XT_HASHLIMIT_SCALE_V2)
        out = [f"--hashlimit-{'above' if self.above else 'upto'} {rate}",
               f"--hashlimit-burst {c.burst}"]
        if c.mode:
            out.append("--hashlimit-mode " + ",".join(
                name for name, bit in HASHLIMIT_MODES.items() if c.mode & bit))
        out.append(f"--hashlimit-name {self.name_}")
        if c.size:
            out.append(f"--hashlimit-htable-size {c.size}")
        if c.max:
            out.append(f"--hashlimit-htable-max {c.max}")
        if c.gcinterval != HASHLIMIT_GC_DEFAULT:
            out.append(f"--hashlimit-htable-gcinterval {c.gcinterval}")
        # libxt_hashlimit leaves out an expiry equal to the unit it printed the rate in.
        if c.expire != printed_unit * 1000:
            out.append(f"--hashlimit-htable-expire {c.expire}")
        if c.srcmask != 32:
            out.append(f"--hashlimit-srcmask {c.srcmask}")
        if c.dstmask != 32:
            out.append(f"--hashlimit-dstmask {c.dstmask}")
        return " ".join(out)

    def compile(self, state):
        table = state.named("hashlimit", self.name_, self.config,
                            lambda: HashlimitTable(self.config))
        return _HashlimitCheck(table, self.above)


# ------------------------------------------------------------------ connlimit

class ConnCount:
    """nf_conncount for one rule: masked address -> the connections counted under it."""
    __slots__ = ("lists",)

    def __init__(self):
        self.lists: dict[int, list] = {}

    def count(self, key: int, conn, conns) -> int:
        """Alive connections under key, conn included (added if new).

        A packet without a connection counts itself once without being
        remembered, as the kernel's tuple entry is dropped when no conntrack
        entry backs it.
        """
        entries = self.lists.get(key)
        if entries is None:
            entries = self.lists[key] = []
        live = [c for c in entries if c is conn or conns.alive(c)]
        if conn is None:
            n = len(live) + 1
        else:
            if not any(c is conn for c in live):
                live.append(conn)
            n = len(live)
        if live:
            self.lists[key] = live
        else:
            del self.lists[key]
        return n

    def sweep(self, conns) -> None:
        """Forget connections that are gone (kernel: the conncount gc worker)."""
        for key in list(self.lists):
            live = [c for c in self.lists[key] if conns.alive(c)]
            if live:
                self.lists[key] = live
            else:
                del self.lists[key]


class _ConnlimitCheck:
    __slots__ = ("count", "mask", "daddr", "limit", "above")

    def __init__(self, count: ConnCount, match: "ConnlimitMatch"):
        self.count = count
        self.mask = prefix_mask(match.mask)
        self.daddr, self.limit, self.above = match.daddr, match.limit, match.above

    def __call__(self, ctx) -> bool:
        key = (ctx.daddr if self.daddr else ctx.saddr) & self.mask
        n = self.count.count(key, ctx.conn, ctx.conns)
        return (n > self.limit) == self.above


@dataclass(frozen=True, slots=True)
class ConnlimitMatch(Match):
    """-m connlimit: above N matches when more than N connections exist, upto N otherwise."""
    limit: int
    above: bool
    mask: int = 32
    daddr: bool = False

    name = "connlimit"
    OPTIONS = {"--connlimit-upto": Opt("upto", inv=True),
               "--connlimit-above": Opt("above", inv=True),
               "--connlimit-mask": Opt("mask"),
               "--connlimit-saddr": Opt("saddr", nargs=0),
               "--connlimit-daddr": Opt("daddr", nargs=0)}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "ConnlimitMatch":
        which = opts.exclusive("upto", "above")
        if which is None:
            raise OptionError("connlimit: --connlimit-upto or --connlimit-above is required")
        side = opts.exclusive("saddr", "daddr")
        return cls(parse_uint(opts.get(which), 0, U32, f"--connlimit-{which}"),
                   (which == "above") != opts.inv(which),
                   parse_uint(opts.get("mask", "32"), 0, 32, "--connlimit-mask"),
                   side == "daddr")

    def save(self) -> str:
        return (f"--connlimit-{'above' if self.above else 'upto'} {self.limit} "
                f"--connlimit-mask {self.mask} --connlimit-{'daddr' if self.daddr else 'saddr'}")

    def compile(self, state):
        return _ConnlimitCheck(state(ConnCount), self)
