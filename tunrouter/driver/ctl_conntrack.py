"""Control-socket commands for the connection table: conntrack(8)'s and sysctl's verbs.

Entries are formatted here, in the router, where the entries and the clock
are: the CLI prints the lines as they come.
"""
from collections.abc import Callable

from tunrouter.conntrack import format as ctformat
from tunrouter.conntrack.events import EventType
from tunrouter.conntrack.filter import make_filter
from tunrouter.conntrack.settings import Settings
from tunrouter.conntrack.table import ConnTable
from tunrouter.driver.control import Subscription

# `-o extended` puts the layer 3 protocol first, as libnetfilter_conntrack's "%-8s %u ".
EXTENDED = "ipv4     2 "


def _outputs(req: dict) -> tuple[bool, bool]:
    formats = req.get("output") or []
    unknown = set(formats) - {"extended", "id"}
    if unknown:
        raise ValueError(f"output format {sorted(unknown)[0]!r} is not supported; use extended and/or id")
    return "extended" in formats, "id" in formats


def _lines(conns, now: float, extended: bool, with_id: bool) -> list[str]:
    out = []
    for ct in conns:
        line = ctformat.list_line(ct, now)
        if extended:
            line = EXTENDED + line
        if with_id:
            line += f" id={ct.id}"
        out.append(line)
    return out


def conntrack_handlers(table: ConnTable, clock: Callable[[], float]) -> dict:
    def ct_list(req):
        extended, with_id = _outputs(req)
        now = clock()
        return _lines(table.conns(now, make_filter(req.get("filter") or {})), now, extended, with_id)

    def ct_delete(req):
        extended, with_id = _outputs(req)
        now = clock()
        victims = table.conns(now, make_filter(req.get("filter") or {}))
        lines = _lines(victims, now, extended, with_id)
        chosen = set(map(id, victims))
        table.delete(lambda ct: id(ct) in chosen, now, portid=req["peer_pid"])
        return lines

    def ct_events(req):
        match = make_filter(req.get("filter") or {})
        wanted = {EventType[name] for name in req.get("events") or [e.name for e in EventType]}
        extended, _ = _outputs(req)

        def render(ev):
            if ev.type not in wanted or not match(ev):
                return None
            line = ctformat.event_line(ev)
            return EXTENDED + line if extended else line
        return Subscription("ct_events", render)

    def sysctl(req):
        """[[name, value or None], ...] in the caller's order: set the values, read the rest."""
        settings = table.settings
        items = req.get("items") or []
        if not items:
            return settings.items()
        trial = Settings(**dict(settings.items()))
        for name, value in items:
            trial.get(name) if value is None else trial.set(name, value)   # all or nothing
        for name, value in items:
            if value is not None:
                settings.set(name, value)
        return [(name, settings.get(name)) for name, _ in items]

    return {
        "ct_list": ct_list,
        "ct_delete": ct_delete,
        "ct_flush": lambda req: table.flush(clock(), portid=req["peer_pid"]),
        "ct_count": lambda req: table.count(),
        "ct_stats": lambda req: [ctformat.stats_line(table.stats)],
        "ct_events": ct_events,
        "ct_expect_list": lambda req: [ctformat.expect_line(e, now) for now in (clock(),)
                                       for e in table.expects.all(now)],
        # `conntrack -E expect`: "%9s " tag, then the expectation as -L shows it
        "ct_expect_events": lambda req: Subscription(
            "ct_expect_events",
            lambda ev: f"{'[' + ev[0] + ']':>9} {ctformat.expect_line(ev[1], clock())}"),
        "sysctl": sysctl,
    }
