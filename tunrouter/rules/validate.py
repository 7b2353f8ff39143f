"""Checks that need the whole table: jump loops, jump depth, and hooks.

The kernel checks these as each rule is added (nf_tables: nft_chain_validate
and the per-expression validate callbacks), so the line it reports is the
first line, in file order, after which the table is invalid.  We replay the
table's rules in that order to name the same line:

* a jump loop reachable from a built-in chain is refused (EMLINK), as is
  entering a chain 16 jumps or gotos below a built-in chain
  (NFT_JUMP_STACK_SIZE): 15 levels of user chains are the most.  Loops among
  chains no built-in chain reaches are accepted, as the kernel accepts them.
* a match or target that the kernel allows only at some hooks (mac, addrtype
  --limit-iface-*, REJECT, the NAT targets) may sit in a user chain only if
  every built-in chain reaching it is one of those hooks.

Rules carried over from the running ruleset (--noflush) were valid already;
they are replayed first.
"""
from tunrouter.rules.base import ALL_HOOKS
from tunrouter.rules.errors import RuleSyntaxError
from tunrouter.rules.model import Hook, Table
from tunrouter.rules.targets import Jump

MAX_LEVEL = 15               # NFT_JUMP_STACK_SIZE - 1


def _restricted(rule):
    """(allowed hooks, name) of each part of rule the kernel limits to some hooks."""
    out = []
    for m in rule.matches:
        hooks = m.hooks()
        if hooks != ALL_HOOKS:
            out.append((hooks, f'match "{m.name}"'))
    target = rule.target
    if target is not None and not isinstance(target, Jump):
        hooks = target.hooks()
        if hooks != ALL_HOOKS:
            out.append((hooks, target.name))
    return out


def _hook_names(hooks) -> str:
    return ", ".join(h.name for h in sorted(hooks))


def table(t: Table, old_rules: set[int]) -> None:
    """Raise RuleSyntaxError at the first line that makes table t invalid."""
    builtin_hook = {c.name: Hook[c.name] for c in t.chains if c.builtin}
    owned = [(0 if id(r) in old_rules else r.lineno, i, c.name, r)
             for c in t.chains for i, r in enumerate(c.rules)]
    owned.sort(key=lambda e: (e[0], e[1]))
    edges: dict[str, list[str]] = {c.name: [] for c in t.chains}
    limits: dict[str, list[tuple[frozenset, str, int]]] = {c.name: [] for c in t.chains}
    reach = _reach(edges, builtin_hook)
    for _order, _i, chain, rule in owned:
        for hooks, what in _restricted(rule):
            limits[chain].append((hooks, what, rule.lineno))
            bad = reach.get(chain, frozenset()) - hooks
            if bad:
                raise RuleSyntaxError(rule.lineno, _hook_message(what, hooks, chain, bad,
                                                                  builtin_hook))
        if isinstance(rule.target, Jump):
            edges[chain].append(rule.target.chain)
            if chain not in reach:
                continue              # unreachable so far: nothing the kernel would check
            try:
                new_reach = _reach(edges, builtin_hook)
            except _Invalid as e:
                raise RuleSyntaxError(rule.lineno, str(e)) from None
            for c, hooks in new_reach.items():
                for allowed, what, _line in limits[c]:
                    bad = hooks - allowed
                    if bad:
                        raise RuleSyntaxError(rule.lineno, _hook_message(
                            what, allowed, c, bad, builtin_hook))
            reach = new_reach


def _hook_message(what, allowed, chain, bad, builtin_hook) -> str:
    where = (f"chain {chain}" if chain in builtin_hook
             else f'user chain "{chain}", reached from {_hook_names(bad)}')
    return f"{what} is not allowed in {where} (only {_hook_names(allowed)})"


class _Invalid(Exception):
    pass


def _reach(edges: dict[str, list[str]], builtin_hook: dict[str, Hook]) -> dict[str, frozenset]:
    """The hooks reaching each chain; _Invalid on a reachable loop or too deep a chain.

    Depth-first with colours finds loops and a reverse post-order; then the
    deepest level and the hooks of each chain follow in that order.
    """
    state: dict[str, int] = {}           # 1: on the current path, 2: done
    order: list[str] = []
    for start in builtin_hook:
        stack = [(start, iter(edges[start]))]
        state[start] = 1
        path = [start]
        while stack:
            chain, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[chain] = 2
                order.append(chain)
            elif state.get(nxt) == 1:
                loop = " -> ".join(path[path.index(nxt):] + [nxt])
                raise _Invalid(f"jump loop: {loop}")
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(edges[nxt])))
    level = {b: 0 for b in builtin_hook}
    hooks = {b: {h} for b, h in builtin_hook.items()}
    for chain in reversed(order):
        for nxt in edges[chain]:
            depth = level[chain] + 1
            if depth > MAX_LEVEL:
                raise _Invalid(f"chain {nxt} would be {depth} jumps below a built-in chain "
                               f"(at most {MAX_LEVEL})")
            level[nxt] = max(level.get(nxt, 0), depth)
            hooks.setdefault(nxt, set()).update(hooks[chain])
    return {c: frozenset(h) for c, h in hooks.items()}
