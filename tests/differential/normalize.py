"""`conntrack -L` lines → records two routers can be compared on.

A record keeps what a connection *is*: protocol, TCP state, both tuples, the
[UNREPLIED]/[ASSURED] flags, and the timeout class, i.e. which default timeout
the entry was last refreshed with.  The remaining seconds themselves depend on
when the table was read, so they are mapped back to the class they count down
from.  Dropped: mark, use, zone and id (bookkeeping, not behaviour) and the
order of the lines.  Anything else this parser does not know is an error, so a
new field in either router's output is noticed, not silently skipped.

Line format: CONNTRACK-REFERENCE.md §8 (libnetfilter_conntrack's default output).
"""
import re
from dataclasses import dataclass

# Default timeouts in seconds, named by their sysctl without "nf_conntrack_"
# (CONNTRACK-REFERENCE.md §1.6, §2, §3; GRE from this kernel's sysctls).
# test_kernel_timeouts_are_the_classes checks them against the running kernel.
TIMEOUT_CLASSES: dict[str, dict[str, int]] = {
    "tcp": {
        "tcp_timeout_syn_sent": 120,
        "tcp_timeout_syn_recv": 60,
        "tcp_timeout_established": 432000,
        "tcp_timeout_fin_wait": 120,
        "tcp_timeout_close_wait": 60,
        "tcp_timeout_last_ack": 30,
        "tcp_timeout_time_wait": 120,
        "tcp_timeout_close": 10,
        "tcp_timeout_max_retrans": 300,
        "tcp_timeout_unacknowledged": 300,
    },
    "udp": {"udp_timeout": 30, "udp_timeout_stream": 120},
    "icmp": {"icmp_timeout": 30},
    "gre": {"gre_timeout": 30, "gre_timeout_stream": 180},
    "unknown": {"generic_timeout": 600},
}

# How long before the listing an entry may have been refreshed.  The classes
# are at least 20 s apart, so this cannot make a value ambiguous.
ELAPSED_SLACK = 5

TUPLE_KEYS = ("src", "dst", "sport", "dport", "type", "code", "id", "srckey", "dstkey")
FLAGS = ("UNREPLIED", "ASSURED")
IGNORED_KEYS = ("mark", "use", "zone", "id")
STATE = re.compile(r"[A-Z][A-Z_0-9]*")


@dataclass(frozen=True)
class Conn:
    """One conntrack entry, as far as behaviour goes."""
    proto: str                   # "tcp/6", "udp/17", "icmp/1", "gre/47", "unknown/253"
    state: str | None            # TCP's state; None for protocols conntrack prints no state for
    orig: str                    # the original tuple as printed: "src=… dst=… sport=… dport=…"
    reply: str                   # the reply tuple, likewise
    flags: tuple[str, ...]       # of FLAGS, in that order
    timeout: str                 # a TIMEOUT_CLASSES name, or several joined by "|" when the value is shared

    def __str__(self) -> str:
        words = [self.proto, self.state, self.orig, "|", self.reply,
                 *(f"[{f}]" for f in self.flags), f"{{{self.timeout}}}"]
        return " ".join(w for w in words if w)


def timeout_class(proto: str, state: str | None, remaining: int) -> str:
    """The default timeout an entry with `remaining` seconds left started from.

    Several classes can share a value (TCP 120 s: SYN_SENT, FIN_WAIT,
    TIME_WAIT); the one named after the entry's own state wins, otherwise all
    candidates are named.  No candidate: "?Ns", which matches no expectation.
    """
    classes = TIMEOUT_CLASSES.get(proto, {})
    found = sorted(n for n, t in classes.items() if 0 <= t - remaining <= ELAPSED_SLACK)
    own = f"{proto}_timeout_{state.lower()}" if state else None
    if own in found:
        return own
    return "|".join(found) or f"?{remaining}s"


def parse_line(line: str) -> Conn:
    """One `conntrack -L` line; ValueError naming the line if it does not read as one."""
    words = line.split()
    try:
        return _parse(words)
    except (ValueError, IndexError) as e:
        raise ValueError(f"not a conntrack -L line ({e}): {line!r}") from None


def _parse(words: list[str]) -> Conn:
    name, number = words[0], int(words[1])
    remaining = int(words[2])
    rest = words[3:]
    state = rest.pop(0) if STATE.fullmatch(rest[0]) else None
    tuples, flags = [], []
    while rest:
        word = rest.pop(0)
        if word.startswith("src="):
            tuples.append(_tuple(word, rest))
        elif word.startswith("[") and word.endswith("]") and word[1:-1] in FLAGS:
            flags.append(word[1:-1])
        elif word.partition("=")[0] not in IGNORED_KEYS:
            raise ValueError(f"unexpected {word!r}")
    if len(tuples) != 2:
        raise ValueError(f"{len(tuples)} tuples")
    return Conn(f"{name}/{number}", state, tuples[0], tuples[1],
                tuple(f for f in FLAGS if f in flags), timeout_class(name, state, remaining))


def _tuple(first: str, rest: list[str]) -> str:
    """A tuple starts at src= and runs while the keys are tuple keys not yet seen in it.

    Consumes its words from rest.  The "not yet seen" rule ends an ICMP tuple
    (…id=N) before the next tuple's src=, and leaves `id=` after `use=` alone.
    """
    words, seen = [first], {"src"}
    while rest and (key := rest[0].partition("=")[0]) in TUPLE_KEYS and key not in seen:
        seen.add(key)
        words.append(rest.pop(0))
    return " ".join(words)


def normalize(lines: list[str]) -> list[Conn]:
    """The table as records in a fixed order."""
    return sorted((parse_line(line) for line in lines if line.strip()), key=str)


def text_shape(line: str) -> str:
    """The line with its timeout and use count blanked: what must match byte for byte."""
    line = re.sub(r"^(\S+ +\d+ )\d+ ", r"\1<t> ", line)
    return re.sub(r" use=\d+$", " use=<n>", line)


def side_by_side(left_title: str, left: list[Conn], right_title: str, right: list[Conn]) -> str:
    """Both tables in two columns, one row per connection (protocol + original tuple), ≠ where they differ."""
    lefts = {(c.proto, c.orig): str(c) for c in left}
    rights = {(c.proto, c.orig): str(c) for c in right}
    cells = [(lefts.get(k, "—"), rights.get(k, "—")) for k in sorted(lefts.keys() | rights.keys())]
    if not cells:
        return f"  {left_title}: (empty)   {right_title}: (empty)"
    width = max(len(left_title), *(len(mine) for mine, _ in cells))
    return "\n".join([f"  {left_title:<{width}}   {right_title}",
                      *(f"{'  ' if mine == theirs else '≠ '}{mine:<{width}}   {theirs}" for mine, theirs in cells)])
