"""What every match (-m) and target (-j) class has: its options and three methods.

The shape of iptables' struct xtables_match/xtables_target reduced to what a
ruleset needs: a name, the long options it takes (with aliases and whether
`!` may precede them), parse() from the collected options, save() in the
canonical form, and the hooks/tables the kernel allows it in.  The parser
(parse.py) does the getopt part: it collects each option once, checks `!`,
and hands the result to parse().
"""
from dataclasses import dataclass
from typing import ClassVar

from tunrouter.rules.errors import OptionError
from tunrouter.rules.model import Hook, IpFilter


@dataclass(frozen=True, slots=True)
class Opt:
    """One long option.  Aliases are further entries with the same key."""
    key: str
    nargs: int = 1            # values that follow it (--tcp-flags takes two)
    inv: bool = False         # may be preceded by "!"


class Opts:
    """The options one match or target got on one rule line, each at most once."""
    __slots__ = ("_values",)

    def __init__(self):
        self._values: dict[str, tuple[object, bool, str]] = {}

    def add(self, spelling: str, opt: Opt, value, inv: bool) -> None:
        if opt.key in self._values:
            raise OptionError(f'option "{spelling}" can only be used once')
        if inv and not opt.inv:
            raise OptionError(f'option "{spelling}" cannot be inverted')
        self._values[opt.key] = (value, inv, spelling)

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def get(self, key: str, default=None):
        entry = self._values.get(key)
        return default if entry is None else entry[0]

    def inv(self, key: str) -> bool:
        entry = self._values.get(key)
        return entry is not None and entry[1]

    def spelling(self, key: str) -> str:
        return self._values[key][2]

    def exclusive(self, *keys: str) -> str | None:
        """The one of keys that was given, or None; two of them is an error."""
        given = [k for k in keys if k in self._values]
        if len(given) > 1:
            raise OptionError(f'options "{self.spelling(given[0])}" and '
                              f'"{self.spelling(given[1])}" cannot be used together')
        return given[0] if given else None

    def require(self, key: str, module: str, option: str) -> None:
        if key not in self._values:
            raise OptionError(f'{module}: option "{option}" must be specified')


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What a match or target may check about the rule it sits in."""
    ipf: IpFilter

    def proto_is(self, *protos: int) -> int | None:
        """The rule's -p if it is one of protos and not inverted, else None."""
        p = self.ipf.proto
        return p if p in protos and not self.ipf.proto_inv else None


ALL_HOOKS = frozenset(Hook)


class Match:
    """Base of every -m class.  Subclasses are frozen dataclasses."""
    __slots__ = ()
    name: ClassVar[str]
    OPTIONS: ClassVar[dict[str, Opt]] = {}
    HOOKS: ClassVar[frozenset] = ALL_HOOKS      # xt_match.hooks
    PROTO: ClassVar[int | None] = None          # -p tcp loads "tcp" implicitly (xt_match.proto)

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "Match":
        raise NotImplementedError

    def save(self) -> str:
        """The options after `-m NAME`, canonical; "" when there are none."""
        raise NotImplementedError

    def hooks(self) -> frozenset:
        """Where the kernel accepts this match (some depend on its options)."""
        return self.HOOKS

    def compile(self, state):
        """The predicate the engine calls per packet: ctx -> bool.

        Stateless matches are their own predicate; stateful ones (limit,
        hashlimit, connlimit, recent) return a state object's method, looked
        up in the engine's state store so that a reload can keep it.
        """
        return self.__call__


class Target:
    """Base of every -j class other than the standard verdicts and chain jumps.

    A terminal target (REJECT, the NAT targets) is returned by the engine as
    the verdict; a non-terminal one (LOG, NFLOG, CT, NOTRACK) does its work in
    fire() and the traversal continues (XT_CONTINUE).
    """
    __slots__ = ()
    name: ClassVar[str]
    OPTIONS: ClassVar[dict[str, Opt]] = {}
    TABLES: ClassVar[frozenset | None] = None   # None: any table
    HOOKS: ClassVar[frozenset] = ALL_HOOKS
    TERMINAL: ClassVar[bool] = True

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "Target":
        raise NotImplementedError

    def save(self) -> str:
        """The options after `-j NAME`, canonical; "" when there are none."""
        raise NotImplementedError

    def hooks(self) -> frozenset:
        return self.HOOKS
