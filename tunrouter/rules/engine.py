"""The rule engine: a Ruleset compiled into per-hook rule lists, and their traversal.

run() follows the kernel's ipt_do_table(): rules in order; a rule matches
when its IP header filter and every match accept the packet; then its
counters count the packet and its target acts.  ACCEPT and DROP end the
traversal; a jump pushes a return point and enters the chain; a goto enters
it without one; RETURN, or the end of a user chain, goes back to the last
return point, and with none left the built-in chain's policy applies (and
counts).  Non-terminal targets (LOG, NFLOG, CT, NOTRACK) act and the next
rule follows; terminal ones (REJECT, SNAT, DNAT, MASQUERADE, REDIRECT) are
the verdict.  A rule without a target only counts.  A match that cannot read
the packet drops it (hotdrop).  Loops and jumps deeper than 15 chains were
refused at load (validate.py), so the return stack is bounded.

Compiling resolves chains to objects and filters to predicates, so
traversal does no dict lookups: each rule is a tuple of predicates, a kind
and an argument.  Counters live here, not in the frozen model: building an
Engine with previous= keeps the counters (and the limit buckets and
connlimit lists) of every rule that is the very same Rule object, which is
what `iptables-restore --noflush` keeps, and the named hashlimit and recent
tables.

The public surface for the router:

    engine = Engine(ruleset, previous=old_engine_or_None)
    verdict = engine.run(FILTER, Hook.FORWARD, ctx)   # ACCEPT, DROP, Reject, Snat...
    engine.logs, engine.nflogs                        # side outputs, drained by the driver
"""
from tunrouter.rules.context import HotDrop
from tunrouter.rules.limits import ConnCount
from tunrouter.rules.log import LogRecord, NflogRecord
from tunrouter.rules.matches import ST_ESTABLISHED, ConntrackMatch, StateMatch
from tunrouter.rules.model import Hook, IpFilter, Ruleset
from tunrouter.rules.save import save
from tunrouter.rules.state import Slot, StateStore
from tunrouter.rules.targets import ACCEPT, DROP, RETURN, Jump, Standard
from tunrouter.rules.values import prefix_mask

# Table numbers for run(): the order netfilter runs them at a shared hook
# (raw before conntrack, nat, then filter).
RAW, NAT, FILTER = 0, 1, 2
TABLE_NAMES = ("raw", "nat", "filter")

# What a compiled rule does once it matches.
K_NONE, K_ACCEPT, K_DROP, K_RETURN, K_JUMP, K_GOTO, K_TERMINAL, K_CONTINUE = range(8)
_STANDARD_KIND = {ACCEPT: K_ACCEPT, DROP: K_DROP, RETURN: K_RETURN}


class CompiledRule:
    """chain and number say where the rule sits (`iptables -L --line-numbers`), for traces."""
    __slots__ = ("tests", "kind", "arg", "packets", "bytes", "rule", "chain", "number")

    def __init__(self, tests, kind, arg, rule, counters, chain: str, number: int):
        self.tests, self.kind, self.arg, self.rule = tests, kind, arg, rule
        self.packets, self.bytes = counters
        self.chain, self.number = chain, number


class CompiledChain:
    __slots__ = ("name", "rules", "policy", "packets", "bytes", "chain")

    def __init__(self, chain, counters):
        self.name = chain.name
        self.chain = chain
        self.rules: list[CompiledRule] = []
        self.policy = None if chain.policy is None else (ACCEPT if chain.policy == "ACCEPT"
                                                         else DROP)
        self.packets, self.bytes = counters


def _ipf_tests(ipf) -> list:
    """Predicates for the -s -d -i -o -p -f fields the rule has (kernel ip_packet_match())."""
    tests = []
    if ipf.src_len or ipf.src_inv:
        m, v, inv = prefix_mask(ipf.src_len), ipf.src, ipf.src_inv
        tests.append((lambda c: (c.saddr & m) != v) if inv else (lambda c: (c.saddr & m) == v))
    if ipf.dst_len or ipf.dst_inv:
        m2, v2, inv2 = prefix_mask(ipf.dst_len), ipf.dst, ipf.dst_inv
        tests.append((lambda c: (c.daddr & m2) != v2) if inv2
                     else (lambda c: (c.daddr & m2) == v2))
    if ipf.iniface:
        tests.append(_iface_test(ipf.iniface, ipf.iniface_inv, out=False))
    if ipf.outiface:
        tests.append(_iface_test(ipf.outiface, ipf.outiface_inv, out=True))
    if ipf.proto:
        p = ipf.proto
        tests.append((lambda c: c.proto != p) if ipf.proto_inv else (lambda c: c.proto == p))
    if ipf.frag is not None:
        tests.append((lambda c: c.fragoff != 0) if ipf.frag else (lambda c: c.fragoff == 0))
    return tests


def _iface_test(name: str, inv: bool, out: bool):
    """An interface name, or a prefix when it ends in "+" (kernel ifname_compare_aligned)."""
    if name.endswith("+"):
        p = name[:-1]
        if out:
            return lambda c: c.out_name.startswith(p) != inv
        return lambda c: c.in_name.startswith(p) != inv
    if out:
        return (lambda c: c.out_name != name) if inv else (lambda c: c.out_name == name)
    return (lambda c: c.in_name != name) if inv else (lambda c: c.in_name == name)


class Engine:
    """A compiled ruleset with its counters, match state and side outputs."""

    def __init__(self, ruleset: Ruleset, previous: "Engine | None" = None):
        self.ruleset = ruleset
        self.state = StateStore(previous.state if previous is not None else None)
        self.logs: list[LogRecord] = []
        self.nflogs: list[NflogRecord] = []
        self.hotdrops = 0
        old_rules: dict[int, CompiledRule] = {}
        old_chains: dict[tuple[str, str], CompiledChain] = {}
        if previous is not None:
            for (table, name), c in previous._chains.items():
                old_chains[(table, name)] = c
                for r in c.rules:
                    old_rules[id(r.rule)] = r
        self._chains: dict[tuple[str, str], CompiledChain] = {}
        self._hooks: list[list[CompiledChain | None]] = [[None] * len(Hook) for _ in TABLE_NAMES]
        for t in ruleset.tables:
            chains = {}
            for c in t.chains:
                old = old_chains.get((t.name, c.name))
                keep = old is not None and (old.chain is c or c.counters is None)
                counters = (old.packets, old.bytes) if keep else (c.counters or (0, 0))
                chains[c.name] = self._chains[(t.name, c.name)] = CompiledChain(c, counters)
            for c in t.chains:
                compiled = chains[c.name]
                for rule in c.rules:
                    old = old_rules.get(id(rule))
                    if old is not None and old.rule is rule:
                        counters = (old.packets, old.bytes)
                    else:
                        counters = rule.set_counters or (0, 0)
                    compiled.rules.append(self._compile(rule, chains, counters, c.name,
                                                        len(compiled.rules) + 1))
                if c.builtin:
                    self._hooks[TABLE_NAMES.index(t.name)][Hook[c.name]] = compiled

    def _compile(self, rule, chains, counters, chain: str, number: int) -> CompiledRule:
        tests = _ipf_tests(rule.ipf)
        tests += [m.compile(Slot(self.state, rule, i)) for i, m in enumerate(rule.matches)]
        target = rule.target
        if target is None:
            kind, arg = K_NONE, None
        elif isinstance(target, Standard):
            kind, arg = _STANDARD_KIND[target], None
        elif isinstance(target, Jump):
            kind, arg = (K_GOTO if target.goto else K_JUMP), chains[target.chain]
        else:
            kind, arg = (K_TERMINAL if target.TERMINAL else K_CONTINUE), target
        return CompiledRule(tuple(tests), kind, arg, rule, counters, chain, number)

    # -- the packet path -----------------------------------------------------

    def chain_at(self, table: int, hook: Hook) -> "CompiledChain | None":
        """The built-in chain table runs at hook, or None when the table has none there."""
        return self._hooks[table][hook]

    def established_accept(self, table: int, hook: Hook) -> "CompiledRule | None":
        """The chain's first rule when it is the usual `--ctstate ESTABLISHED... -j ACCEPT`.

        That rule, with nothing else to test (no address, interface or other
        match, not inverted), accepts every ESTABLISHED packet and is the first
        to see it: the router may then count it and accept such a packet
        without a Ctx or a traversal, which is exactly what run() would do.
        """
        chain = self._hooks[table][hook]
        if chain is None or not chain.rules:
            return None
        first = chain.rules[0]
        rule = first.rule
        if first.kind != K_ACCEPT or rule.ipf != IpFilter() or len(rule.matches) != 1:
            return None
        m = rule.matches[0]
        if type(m) is ConntrackMatch and m == ConntrackMatch(m.state) \
                or type(m) is StateMatch and not m.inv:
            return first if m.state & ST_ESTABLISHED else None
        return None

    def run(self, table: int, hook: Hook, ctx):
        """Traverse table's chain for hook with ctx; return the verdict.

        ACCEPT or DROP (targets.ACCEPT/DROP), or the terminal target that
        decided: a Reject (send its ICMP error or TCP reset, drop the packet)
        or a NAT target (Snat, Dnat, Masquerade, Redirect: the binding for a
        new connection).  A table without that hook accepts.
        """
        chain = self._hooks[table][hook]
        if chain is None:
            return ACCEPT
        ctx.hook = hook
        size = ctx.length
        rules = chain.rules
        n = len(rules)
        i = 0
        stack = None                  # return points, made on the first jump
        try:
            while True:
                if i < n:
                    r = rules[i]
                    i += 1
                    for test in r.tests:
                        if not test(ctx):
                            break
                    else:
                        r.packets += 1
                        r.bytes += size
                        if ctx.trace is not None:
                            ctx.trace.append((TABLE_NAMES[table], hook, r.chain, r.number, r.rule))
                        kind = r.kind
                        if kind == K_ACCEPT:
                            return ACCEPT
                        if kind == K_DROP:
                            return DROP
                        if kind == K_CONTINUE:
                            r.arg.fire(ctx, self)
                        elif kind == K_JUMP:
                            if stack is None:
                                stack = []
                            stack.append((rules, i))
                            rules, i = r.arg.rules, 0
                            n = len(rules)
                        elif kind == K_GOTO:
                            rules, i = r.arg.rules, 0
                            n = len(rules)
                        elif kind == K_RETURN:
                            i = n
                        elif kind == K_TERMINAL:
                            return r.arg
                    continue
                if stack:
                    rules, i = stack.pop()
                    n = len(rules)
                    continue
                chain.packets += 1
                chain.bytes += size
                if ctx.trace is not None:
                    ctx.trace.append((TABLE_NAMES[table], hook, chain.name, 0, chain.policy))
                return chain.policy
        except HotDrop:
            self.hotdrops += 1
            if ctx.trace is not None:
                ctx.trace.append((TABLE_NAMES[table], hook, "", -1, DROP))
            return DROP

    # -- side outputs (called by LOG and NFLOG) ------------------------------

    def log(self, target, ctx) -> None:
        self.logs.append(LogRecord(target, ctx))

    def nflog(self, target, ctx) -> None:
        self.nflogs.append(NflogRecord(target, ctx))

    # -- management ----------------------------------------------------------

    def counters(self, table: str, chain: str, index: int | None) -> tuple[int, int]:
        """[packets, bytes] of rule index of chain (None: the chain's policy)."""
        c = self._chains[(table, chain)]
        if index is None:
            return (c.packets, c.bytes)
        r = c.rules[index]
        return (r.packets, r.bytes)

    def zero(self, table: str | None = None, chain: str | None = None) -> None:
        """iptables -Z [CHAIN] [-t TABLE]: zero rule and policy counters."""
        for (t, name), c in self._chains.items():
            if (table is None or t == table) and (chain is None or name == chain):
                c.packets = c.bytes = 0
                for r in c.rules:
                    r.packets = r.bytes = 0

    def save(self, counters: bool = False, table: str | None = None) -> str:
        """iptables-save [-c] [-t TABLE] of the running ruleset, live counters included."""
        return save(self.ruleset, self.counters, counters, table)

    def sweep(self, conns) -> None:
        """Forget connlimit entries whose connections are gone (call now and then)."""
        for _rule, state in self.state.rules.values():
            if isinstance(state, ConnCount):
                state.sweep(conns)
