"""What the router adds around the rule engine: loading with its limits, the hooks' context.

The rules package parses and validates everything iptables offers; the router
runs what it can.  Until the helpers issue lands, a ruleset using CT --helper
cannot be honoured, so load() refuses it with the line, rather than accept it
and silently do nothing.
"""
from tunrouter.conntrack.proto.tcp import TcpState
from tunrouter.rules import Engine, Ruleset, RuleSyntaxError, restore
from tunrouter.rules.targets import Ct

_CLOSED = (TcpState.TIME_WAIT, TcpState.CLOSE)


def unsupported(ruleset: Ruleset) -> None:
    """Raise RuleSyntaxError for the first rule whose target the router cannot honour yet."""
    for t in ruleset.tables:
        for c in t.chains:
            for r in c.rules:
                tg = r.target
                if isinstance(tg, Ct) and tg.helper:
                    raise RuleSyntaxError(r.lineno, "CT --helper is not supported yet "
                                                    "(connection tracking helpers are not "
                                                    "implemented)")


def load(text: str, current: Ruleset | None = None, noflush: bool = False,
         counters: bool = False) -> Ruleset:
    """iptables-restore text -> Ruleset the router can run; RuleSyntaxError("line N: ...")."""
    ruleset = restore(text, current=current, noflush=noflush, counters=counters)
    unsupported(ruleset)
    return ruleset


def engine_for(text: str, previous: Engine | None = None, noflush: bool = False,
               counters: bool = False) -> Engine:
    current = previous.ruleset if previous is not None else None
    return Engine(load(text, current, noflush, counters), previous=previous)


class ConnView:
    """-m connlimit's view of the table: is an entry still there and not closing."""
    __slots__ = ("_conns",)

    def __init__(self, table):
        self._conns = table._conns

    def alive(self, conn) -> bool:
        return self._conns.get(conn.orig) is conn and conn.state not in _CLOSED
