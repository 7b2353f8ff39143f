"""iptables-restore text -> Ruleset, all or nothing.

Reads the language iptables-save writes and iptables-restore reads
(iptables 1.8.9, xtables-restore.c and xshared.c): `*table` ... `COMMIT`
blocks; `:CHAIN POLICY [packets:bytes]` lines (`-` for user chains); rule
commands `-A CHAIN`, `-I CHAIN [N]`, `-N CHAIN`, `-P CHAIN POLICY`, each
optionally after `[packets:bytes]`; `#` comment lines; quoting as
add_param_to_argv() reads it (double quotes group, a backslash inside
quotes takes the next character).  Options are read as iptables' getopt
loop reads them: the newest loaded match or target's option wins, and an
option no loaded module knows loads the -p protocol's match (`-p tcp
--dport 22` is `-p tcp -m tcp --dport 22`).

restore() returns a new Ruleset or raises RuleSyntaxError naming the line;
it never returns something half-applied.  Unlike iptables-restore, which
commits each table at its COMMIT, a later error rejects the whole text.

Deliberately stricter than iptables (what tunrouter accepts, iptables
accepts): long options are never abbreviated (getopt would take `--dpo`),
an unterminated quote is an error (iptables reads to the end of the line),
and commands other than -A -I -N -P are not supported.
"""
from tunrouter.rules import validate
from tunrouter.rules.base import Opts, RuleInfo
from tunrouter.rules.errors import OptionError, RuleSyntaxError, did_you_mean, unknown
from tunrouter.rules.matches import MATCHES, PROTO_MATCHES
from tunrouter.rules.model import (
    POLICIES,
    PROTO_NUMBERS,
    TABLES,
    Chain,
    Hook,
    IpFilter,
    Rule,
    Ruleset,
    Table,
)
from tunrouter.rules.targets import STANDARD, TARGETS, Jump
from tunrouter.rules.values import U32, parse_prefix, parse_uint, prefix_mask

CHAIN_NAME_MAX = 28          # XT_EXTENSION_MAXNAMELEN - 1
IFNAME_MAX = 15              # IFNAMSIZ - 1
BUILTIN_NAMES = frozenset(h.name for h in Hook)
_UNSUPPORTED_TABLES = ("mangle", "security")
_UNSUPPORTED_COMMANDS = ("-D", "--delete", "-R", "--replace", "-F", "--flush", "-X",
                         "--delete-chain", "-Z", "--zero", "-E", "--rename-chain", "-L", "--list",
                         "-S", "--list-rules", "-C", "--check")

# iptables' own options (xshared.c original_opts), by what they set.
_BASE = {"-s": "src", "--source": "src", "--src": "src",
         "-d": "dst", "--destination": "dst", "--dst": "dst",
         "-i": "in", "--in-interface": "in", "-o": "out", "--out-interface": "out",
         "-p": "proto", "--protocol": "proto", "-f": "frag", "--fragment": "frag",
         "-m": "match", "--match": "match", "-j": "jump", "--jump": "jump",
         "-g": "goto", "--goto": "goto", "-c": "counters", "--set-counters": "counters"}
_INVERTIBLE = frozenset({"src", "dst", "in", "out", "proto", "frag"})


def tokenize(text: str) -> list[str]:
    """Split a rule line as iptables' add_param_to_argv() does.

    Whitespace separates words; a double quote opens a quoted part and the
    next double quote closes it and ends the word; inside quotes a backslash
    takes the next character as it is.  Outside quotes a backslash is an
    ordinary character.
    """
    words, word, quoted, escaped, in_word = [], [], False, False, False
    for ch in text:
        if quoted:
            if escaped:
                word.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
                words.append("".join(word))
                word, in_word = [], False
            else:
                word.append(ch)
        elif ch == '"':
            quoted, in_word = True, True
        elif ch in " \t":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        else:
            word.append(ch)
            in_word = True
    if quoted:
        raise OptionError("unterminated quote")
    if in_word:
        words.append("".join(word))
    return words


def _parse_counters(text: str) -> tuple[int, int]:
    """`[packets:bytes]` as two integers."""
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else None
    packets, colon, octets = (inner or "").partition(":")
    if inner is None or not colon:
        raise OptionError(f'bad counters "{text}" (expected [packets:bytes])')
    return (parse_uint(packets, 0, (1 << 64) - 1, "packet count"),
            parse_uint(octets, 0, (1 << 64) - 1, "byte count"))


class _TableBuild:
    """One table while its block is read: chains in order, each a list of Rules."""

    def __init__(self, name: str, base: Table | None, noflush: bool):
        self.name = name
        self.builtins = tuple(h.name for h in TABLES[name])
        self.old_rules: set[int] = set()          # ids of rules carried from base
        self.touched = noflush and base is not None
        self.policy: dict[str, str | None] = {}
        self.counters: dict[str, tuple[int, int] | None] = {}
        self.rules: dict[str, list[Rule]] = {}
        if noflush and base is not None:
            for c in base.chains:
                self.policy[c.name] = c.policy
                self.counters[c.name] = None
                self.rules[c.name] = list(c.rules)
                self.old_rules.update(id(r) for r in c.rules)
        else:
            for name_ in self.builtins:
                self.policy[name_] = "ACCEPT"
                self.counters[name_] = (0, 0)
                self.rules[name_] = []

    def build(self) -> Table:
        order = list(self.builtins) + [c for c in self.rules if c not in self.builtins]
        return Table(self.name, tuple(Chain(c, self.policy[c], tuple(self.rules[c]),
                                            self.counters[c]) for c in order))


def restore(text: str, current: Ruleset | None = None, noflush: bool = False,
            counters: bool = False) -> Ruleset:
    """Parse iptables-restore text against the running ruleset; return the new one.

    current   the ruleset in force: tables the text does not name stay as they are.
    noflush   `iptables-restore --noflush`: named tables keep their rules and
              chains; rules are appended; a `:CHAIN` line for an existing user
              chain empties it; a built-in chain line sets the policy.
    counters  `iptables-restore -c`: apply [packets:bytes] of chain and rule lines.
              (`-c P B` inside a rule applies either way, as in iptables.)
    """
    current = current or Ruleset()
    tables: dict[str, Table | None] = {t.name: t for t in current.tables}
    build: _TableBuild | None = None
    opened_at = 0
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith("*"):
                if build is not None:
                    raise OptionError(f'COMMIT expected before "{line}" '
                                      f'(table "{build.name}" opened at line {opened_at})')
                name = line[1:]
                if name not in TABLES:
                    if name in _UNSUPPORTED_TABLES:
                        raise OptionError(f'table "{name}" is not supported '
                                          "(tunrouter has raw, filter and nat)")
                    raise unknown("table", name, TABLES)
                build = _TableBuild(name, tables.get(name), noflush)
                opened_at = lineno
            elif build is None:
                raise OptionError("rule outside a table (a *table line must come first)")
            elif line == "COMMIT":
                tables[build.name] = _commit(build)
                build = None
            elif line.startswith(":"):
                _chain_line(build, line, counters)
            else:
                _command(build, line, lineno, counters)
        except OptionError as e:
            raise RuleSyntaxError(lineno, str(e)) from None
    if build is not None:
        raise RuleSyntaxError(len(text.splitlines()) + 1, f'COMMIT expected (table '
                              f'"{build.name}" opened at line {opened_at})')
    return Ruleset(tuple(t for name in TABLES if (t := tables.get(name)) is not None))


def parse(text: str, counters: bool = False) -> Ruleset:
    """A ruleset from text alone (what `iptables-restore` builds on an empty machine)."""
    return restore(text, counters=counters)


def _commit(build: _TableBuild) -> Table | None:
    if not build.touched:
        return None
    table = build.build()
    validate.table(table, build.old_rules)
    return table


def _chain_line(build: _TableBuild, line: str, counters: bool) -> None:
    parts = line[1:].split()
    if len(parts) not in (2, 3):
        raise OptionError(f'bad chain line "{line}" (expected ":NAME POLICY [packets:bytes]")')
    name, policy = parts[0], parts[1]
    given = _parse_counters(parts[2]) if len(parts) == 3 else None
    build.touched = True
    if name in build.builtins:
        if policy not in POLICIES:
            raise OptionError(f'bad policy "{policy}" for built-in chain {name} (ACCEPT or DROP)')
        build.policy[name] = policy
        if counters and given is not None:
            build.counters[name] = given
        return
    _check_chain_name(name, build)
    if policy != "-":
        raise OptionError(f'user chain "{name}" cannot have a policy (write "-")')
    build.policy[name] = None
    build.counters[name] = None
    build.rules[name] = []          # declaring an existing user chain empties it (--noflush)


def _check_chain_name(name: str, build: _TableBuild) -> None:
    if name in BUILTIN_NAMES:
        raise OptionError(f'"{name}" is not a built-in chain of table {build.name}')
    if len(name) > CHAIN_NAME_MAX:
        raise OptionError(f'chain name "{name}" is longer than {CHAIN_NAME_MAX} characters')
    if name.startswith(("-", "!")):
        raise OptionError(f'chain name "{name}" may not start with "{name[0]}"')
    if name in STANDARD or name in TARGETS:
        raise OptionError(f'chain name "{name}" is the name of a target')


def _command(build: _TableBuild, line: str, lineno: int, counters: bool) -> None:
    words = tokenize(line)
    if not words:
        raise OptionError("empty command")
    set_counters = None
    if words[0].startswith("["):
        given = _parse_counters(words.pop(0))
        set_counters = given if counters else None
        if not words:
            raise OptionError("counters without a command")
    cmd = words[0]
    if cmd in ("-N", "--new-chain"):
        if len(words) != 2:
            raise OptionError(f'"{cmd}" takes one chain name')
        if words[1] in build.rules:
            raise OptionError(f'chain "{words[1]}" already exists')
        _check_chain_name(words[1], build)
        build.touched = True
        build.policy[words[1]] = None
        build.counters[words[1]] = None
        build.rules[words[1]] = []
        return
    if cmd in ("-P", "--policy"):
        if len(words) != 3 or words[1] not in build.builtins:
            raise OptionError(f'"{cmd}" takes a built-in chain of table {build.name} and a policy')
        if words[2] not in POLICIES:
            raise OptionError(f'bad policy "{words[2]}" (ACCEPT or DROP)')
        build.touched = True
        build.policy[words[1]] = words[2]
        return
    if cmd in _UNSUPPORTED_COMMANDS:
        raise OptionError(f'command "{cmd}" is not supported in a restore file '
                          "(tunrouter takes -A, -I, -N and -P)")
    if cmd not in ("-A", "--append", "-I", "--insert"):
        raise unknown("command", cmd, ("-A", "-I", "-N", "-P"))
    if len(words) < 2:
        raise OptionError(f'"{cmd}" needs a chain')
    chain = words[1]
    if chain not in build.rules:
        raise OptionError(f'chain "{chain}" does not exist{did_you_mean(chain, build.rules)}')
    rest, position = words[2:], None
    if cmd in ("-I", "--insert"):
        position = 1
        if rest and rest[0].isdigit():
            position = parse_uint(rest.pop(0), 1, U32, "rule number")
            if position > len(build.rules[chain]) + 1:
                raise OptionError(f"rule number {position} is beyond the end of chain {chain}")
    rules = _rule(build, chain, rest, lineno, set_counters)
    build.touched = True
    if position is None:
        build.rules[chain].extend(rules)
    else:
        build.rules[chain][position - 1:position - 1] = rules


class _Loaded:
    """A match or target module loaded on one rule line, and the options it got."""
    __slots__ = ("cls", "opts", "is_target")

    def __init__(self, cls, is_target: bool = False):
        self.cls, self.opts, self.is_target = cls, Opts(), is_target


def _rule(build: _TableBuild, chain: str, words: list[str], lineno: int,
          set_counters) -> list[Rule]:
    """One rule command's options -> Rules (several when -s/-d list addresses)."""
    f: dict[str, object] = {}
    inv: dict[str, bool] = {}
    loaded: list[_Loaded] = []
    target = None
    pending_inv = False
    i = 0

    def value(option: str) -> str:
        nonlocal i
        if i >= len(words):
            raise OptionError(f'option "{option}" requires a value')
        i += 1
        return words[i - 1]

    while i < len(words):
        word = words[i]
        i += 1
        if word == "!":
            if pending_inv:
                raise OptionError('multiple "!" flags not allowed')
            pending_inv = True
            continue
        base = _BASE.get(word)
        if base is not None:
            if pending_inv and base not in _INVERTIBLE:
                raise OptionError(f'"!" is not allowed before "{word}"')
            if base in f or (base == "goto" and "jump" in f):
                raise OptionError(f'multiple "{word}" options not allowed')
            if base == "match":
                name = value(word)
                cls = MATCHES.get(name)
                if cls is None:
                    raise unknown("match", name, MATCHES)
                if cls.PROTO and any(m.cls is cls for m in loaded):
                    raise OptionError(f'match "{name}" given twice')
                loaded.append(_Loaded(cls))
                continue
            if base in ("jump", "goto"):
                target = _target(build, base, value(word), loaded)
                f["jump"] = True
                continue
            if base == "frag":
                f["frag"] = not pending_inv
            elif base == "counters":
                set_counters = (parse_uint(value(word), 0, (1 << 64) - 1, "packet count"),
                                parse_uint(value(word), 0, (1 << 64) - 1, "byte count"))
                f["counters"] = set_counters
            else:
                f[base] = value(word)
                inv[base] = pending_inv
            pending_inv = False
            continue
        if word.startswith("--"):
            _load_implicit(word, loaded, f)
            module, opt = _resolve(word, loaded, f)
            args = words[i:i + opt.nargs]
            if len(args) < opt.nargs:
                raise OptionError(f'option "{word}" requires '
                                  f'{"a value" if opt.nargs == 1 else f"{opt.nargs} values"}')
            i += opt.nargs
            val = True if opt.nargs == 0 else args[0] if opt.nargs == 1 else tuple(args)
            module.opts.add(word, opt, val, pending_inv)
            pending_inv = False
            continue
        if word.startswith("-") and len(word) > 1:
            raise unknown("option", word, _BASE)
        raise OptionError(f'unexpected argument "{word}"')
    if pending_inv:
        raise OptionError('"!" at the end of the rule')
    return _build_rules(build, chain, f, inv, loaded, target, lineno, set_counters)


def _load_implicit(word: str, loaded: list[_Loaded], f) -> None:
    """Load the -p protocol's match when no loaded module knows word (iptables' command_default)."""
    if any(word in m.cls.OPTIONS for m in loaded):
        return
    proto = _proto_number(f["proto"]) if "proto" in f else 0
    implicit = PROTO_MATCHES.get(proto)
    if implicit is not None and word in implicit.OPTIONS and \
            not any(m.cls is implicit for m in loaded):
        # getopt would take a prefix of a loaded module's option first.
        _refuse_abbreviation(word, loaded)
        loaded.append(_Loaded(implicit))


def _resolve(word: str, loaded: list[_Loaded], f):
    """The newest loaded module that has option word (iptables merges options newest first)."""
    for module in reversed(loaded):
        opt = module.cls.OPTIONS.get(word)
        if opt is not None:
            return module, opt
    implicit = PROTO_MATCHES.get(_proto_number(f["proto"]) if "proto" in f else 0)
    known = loaded if implicit is None else loaded + [_Loaded(implicit)]
    _refuse_abbreviation(word, known)
    candidates = set(_BASE)
    for m in known:
        candidates.update(m.cls.OPTIONS)
    raise unknown("option", word, candidates)


def _refuse_abbreviation(word: str, loaded: list[_Loaded]) -> None:
    full = sorted({o for m in loaded for o in m.cls.OPTIONS if o.startswith(word)}
                  | {o for o in _BASE if o.startswith(word) and o.startswith("--")})
    if full:
        raise OptionError(f'option "{word}" is an abbreviation of "{full[0]}": write it in full')


def _target(build: _TableBuild, kind: str, name: str, loaded: list[_Loaded]):
    if kind == "goto":
        if name not in build.rules or name in build.builtins:
            raise OptionError(f'goto needs a user chain: "{name}" does not exist'
                              f"{did_you_mean(name, build.rules)}")
        return Jump(name, goto=True)
    if name in STANDARD:
        return STANDARD[name]
    cls = TARGETS.get(name)
    if cls is not None:
        module = _Loaded(cls, is_target=True)
        loaded.append(module)
        return module
    if name in build.rules and name not in build.builtins:
        return Jump(name)
    if name in build.builtins:
        raise OptionError(f'cannot jump to built-in chain "{name}"')
    raise unknown("target or chain", name, list(STANDARD) + list(TARGETS)
                  + [c for c in build.rules if c not in build.builtins])


def _proto_number(text: str) -> int:
    word = text.lower()
    if word.isdigit():
        return parse_uint(word, 0, 255, "protocol")
    proto = PROTO_NUMBERS.get(word)
    if proto is None:
        raise unknown("protocol", text, PROTO_NUMBERS)
    return proto


def _iface(text: str) -> str:
    if len(text) > IFNAME_MAX:
        raise OptionError(f'interface name "{text}" is longer than {IFNAME_MAX} characters')
    if "/" in text or not text:
        raise OptionError(f'bad interface name "{text}"')
    return "" if text == "+" else text


def _addresses(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        addr, plen = parse_prefix(part)
        out.append((addr & prefix_mask(plen), plen))
    return out


def _build_rules(build, chain, f, inv, loaded, target, lineno, set_counters) -> list[Rule]:
    proto = _proto_number(f["proto"]) if "proto" in f else 0
    if proto == 0 and inv.get("proto"):
        raise OptionError("! -p all would never match")
    iniface = _iface(f["in"]) if "in" in f else ""
    outiface = _iface(f["out"]) if "out" in f else ""
    if ("in" in f and not iniface and inv["in"]) or ("out" in f and not outiface and inv["out"]):
        raise OptionError('"! -i +" / "! -o +" would never match')
    if "in" in f and chain in ("OUTPUT", "POSTROUTING"):
        raise OptionError(f"-i cannot be used in {chain}: there is no input interface")
    if "out" in f and chain in ("PREROUTING", "INPUT"):
        raise OptionError(f"-o cannot be used in {chain}: there is no output interface yet")
    srcs = _addresses(f["src"]) if "src" in f else [(0, 0)]
    dsts = _addresses(f["dst"]) if "dst" in f else [(0, 0)]
    if (len(srcs) > 1 and inv.get("src")) or (len(dsts) > 1 and inv.get("dst")):
        raise OptionError('"!" is not allowed with several addresses')
    template = IpFilter(iniface=iniface, iniface_inv=inv.get("in", False),
                        outiface=outiface, outiface_inv=inv.get("out", False),
                        proto=proto, proto_inv=inv.get("proto", False), frag=f.get("frag"))
    info = RuleInfo(template)
    matches = []
    for module in loaded:
        if module.is_target:
            continue
        cls = module.cls
        if cls.PROTO and info.proto_is(cls.PROTO) is None:
            raise OptionError(f'match "{cls.name}" needs -p {cls.name}')
        matches.append(cls.parse(module.opts, info))
    if isinstance(target, _Loaded):
        cls = target.cls
        if cls.TABLES is not None and build.name not in cls.TABLES:
            raise OptionError(f"{cls.name} is only valid in the "
                              f"{' and '.join(sorted(cls.TABLES))} table")
        target = cls.parse(target.opts, info)
    rules = []
    for src, src_len in srcs:
        for dst, dst_len in dsts:
            ipf = IpFilter(src, src_len, inv.get("src", False), dst, dst_len,
                           inv.get("dst", False), iniface, inv.get("in", False), outiface,
                           inv.get("out", False), proto, inv.get("proto", False), f.get("frag"))
            rules.append(Rule(lineno, ipf, tuple(matches), target, set_counters))
    return rules


def merge(current: Ruleset, text: str, counters: bool = False) -> Ruleset:
    """`iptables-restore --noflush`: the text applied on top of current."""
    return restore(text, current, noflush=True, counters=counters)
