"""What the router adds around the rule engine: an engine from text, the hooks' context.

Every target the rules package parses the router honours, CT --helper
included for the helpers the rules know (the built-in ones and those
registered with rules.targets.register_ct_helper()).
"""
from tunrouter.conntrack.proto.tcp import TcpState
from tunrouter.rules import Engine, restore

_CLOSED = (TcpState.TIME_WAIT, TcpState.CLOSE)


def engine_for(text: str, previous: Engine | None = None, noflush: bool = False,
               counters: bool = False) -> Engine:
    current = previous.ruleset if previous is not None else None
    return Engine(restore(text, current=current, noflush=noflush, counters=counters),
                  previous=previous)


class ConnView:
    """-m connlimit's view of the table: is an entry still there and not closing."""
    __slots__ = ("_conns",)

    def __init__(self, table):
        self._conns = table._conns

    def alive(self, conn) -> bool:
        return self._conns.get(conn.orig) is conn and conn.state not in _CLOSED
