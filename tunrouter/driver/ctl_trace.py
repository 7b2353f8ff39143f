"""Control-socket command `trace`: stream the traces of the packets a filter selects.

Each subscriber gives its own filter (tcpdump or iptables style, see
core.trace); the router traces what any live subscriber wants, and each
gets the traces its filter selects, rendered here, where the ruleset is:

    {"id": 7, "in": "lan0", "packet": "<hex>", "events": [...],
     "outcome": ["forwarded"], "out": [["wan0", "<hex>"]]}

events: ["conntrack", "NEW"] and [table, hook, chain, number, what] where
number 0 is the chain's policy (what: "ACCEPT"/"DROP") and number N the
rule matched (what: its iptables-save text); -1 a packet the rules could not
read (dropped).
"""
from tunrouter.core.desc import parse
from tunrouter.core.trace import Tracer, compile_filter
from tunrouter.driver.control import Subscription
from tunrouter.rules.save import rule_text
from tunrouter.rules.targets import ACCEPT

TOPIC = "trace"


def _event(e) -> list:
    if e[0] == "conntrack":
        return list(e)
    table, hook, chain, number, what = e
    if number > 0:
        text = f"-A {chain} {rule_text(what)}".rstrip()
    else:
        text = "ACCEPT" if what is ACCEPT else "DROP"
    return [table, hook.name, chain, number, text]


def render(trace, names: list[str], taps: list[bool]) -> dict:
    """The trace as JSON; frames leaving TAP ports without their Ethernet header."""
    return {"id": trace.id, "in": names[trace.in_port], "packet": trace.packet.hex(),
            "after": trace.after.hex(),
            "events": [_event(e) for e in trace.events], "outcome": trace.outcome,
            "out": [[names[port], (frame[14:] if taps[port] else frame).hex()]
                    for port, frame in trace.out]}


def trace_handlers(router) -> dict:
    names, taps = router._names, router._tap

    def trace(req):
        match = compile_filter(str(req.get("filter") or ""), names)   # FilterError: the reply says why

        def one(t):
            d = parse(memoryview(t.packet), t.in_port)
            return render(t, names, taps) if match(d, t.in_port) else None
        sub = Subscription(TOPIC, one)
        sub.match = match
        return sub

    return {"trace": trace}


class _AnyOf:
    """The tracer's filter: what any live subscriber wants."""
    __slots__ = ("matches",)

    def __init__(self, matches: list):
        self.matches = matches

    def __call__(self, d, port: int) -> bool:
        return any(m(d, port) for m in self.matches)


def sync(router, ctl) -> list[int]:
    """Trace what the live subscribers want, stop when none is left, publish what was
    traced; returns the fds of subscribers dropped (gone or too slow)."""
    subs = ctl.subscriptions(TOPIC) if ctl is not None else []
    if not subs:
        if router.tracer is not None:
            router.set_tracer(None)
        return []
    matches = [s.match for s in subs]
    if router.tracer is None or router.tracer.match.matches != matches:
        router.set_tracer(Tracer(_AnyOf(matches)))
    done = router.tracer.done
    if not done:
        return []
    router.tracer.done = []
    return ctl.publish(TOPIC, done)
