"""Where stateful matches keep their state, and what a reload carries over.

The kernel's rules own their state in two ways, and a reload treats them
differently:

* per rule (xt_limit's bucket, xt_connlimit's connection lists): a rule that
  survives the reload keeps it.  Only `iptables-restore --noflush` keeps
  rules; here a rule survives when the merged ruleset holds the very same
  Rule object (parse.merge() reuses them).
* per name (xt_hashlimit and xt_recent tables): a table lives as long as a
  rule names it, so a reload that still names it keeps its entries.

Time is jiffies, as the kernel counts it: floor(now * HZ).  HZ is Debian's
CONFIG_HZ=250, the reference kernel's build option.
"""
HZ = 250


def jiffies(now: float) -> int:
    return int(now * HZ)


def msecs_to_jiffies(ms: int) -> int:
    """kernel msecs_to_jiffies() for HZ dividing 1000: rounds up."""
    return -(-ms * HZ // 1000)


class StateStore:
    """The engine's stateful-match state, optionally inheriting from the previous engine's."""

    def __init__(self, previous: "StateStore | None" = None):
        self._previous = previous
        # (id(rule), match index) -> (rule, state); the rule is held so its id stays unique.
        self.rules: dict[tuple[int, int], tuple[object, object]] = {}
        self.named: dict[tuple[str, str], object] = {}

    def for_rule(self, rule, index: int, factory):
        """The state of match number index of rule, kept if the rule survived a reload."""
        key = (id(rule), index)
        if self._previous is not None:
            old = self._previous.rules.get(key)
            if old is not None and old[0] is rule:
                self.rules[key] = old
                return old[1]
        state = factory()
        self.rules[key] = (rule, state)
        return state

    def for_name(self, kind: str, name: str, config, factory):
        """The table called name (per kind), shared by every rule naming it.

        From the previous engine it is kept when its configuration is the same
        (the kernel would keep it even when not, with the old configuration).
        """
        key = (kind, name)
        state = self.named.get(key)
        if state is not None:
            return state
        if self._previous is not None:
            old = self._previous.named.get(key)
            if old is not None and old.config == config:
                self.named[key] = old
                return old
        state = self.named[key] = factory()
        return state


class Slot:
    """What Match.compile() gets: the state of one match of one rule, and named tables."""
    __slots__ = ("store", "rule", "index")

    def __init__(self, store: StateStore, rule, index: int):
        self.store, self.rule, self.index = store, rule, index

    def __call__(self, factory):
        return self.store.for_rule(self.rule, self.index, factory)

    def named(self, kind: str, name: str, config, factory):
        return self.store.for_name(kind, name, config, factory)
