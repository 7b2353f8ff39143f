"""Rules: the iptables-save / iptables-restore language, and an engine that runs it.

Pure (no I/O, no clock: time comes in as ctx.now).  What the router calls:

    ruleset = restore(text, current=engine.ruleset, noflush=False, counters=False)
              # raises RuleSyntaxError("line 12: ...") and changes nothing
    engine = Engine(ruleset, previous=engine)   # counters and match state carried over
    ctx = Ctx(desc, ctinfo, conn, in_name, out_name, now, ...)   # context.py: the contract
    verdict = engine.run(FILTER, Hook.FORWARD, ctx)
              # ACCEPT | DROP | Reject | Snat | Dnat | Masquerade | Redirect
    engine.logs / engine.nflogs                 # LogRecord / NflogRecord lists to drain
    engine.save(counters=True)                  # iptables-save -c

Modules: model (the data), parse and validate (text -> model), save (model ->
text), matches, limits and recent (-m), targets (-j), context (Ctx), state
(what a reload keeps), engine (compile and run), log (the LOG line).
"""
from tunrouter.rules.context import AddrTypes, ConnView, Ctx
from tunrouter.rules.engine import FILTER, NAT, RAW, Engine
from tunrouter.rules.errors import RuleSyntaxError
from tunrouter.rules.model import Hook, Ruleset
from tunrouter.rules.parse import merge, parse, restore
from tunrouter.rules.save import save
from tunrouter.rules.targets import (
    ACCEPT,
    DROP,
    Dnat,
    Masquerade,
    Redirect,
    Reject,
    Snat,
)

__all__ = ["ACCEPT", "DROP", "FILTER", "NAT", "RAW", "AddrTypes", "ConnView", "Ctx", "Dnat",
           "Engine", "Hook", "Masquerade", "Redirect", "Reject", "RuleSyntaxError", "Ruleset",
           "Snat", "merge", "parse", "restore", "save"]
