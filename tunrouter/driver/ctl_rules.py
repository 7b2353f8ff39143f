"""Control-socket commands for the rules: iptables-restore, iptables-save, iptables -L / -Z.

The text is made here, in the router, where the ruleset and its live
counters are; the CLI prints it as it comes.  `iptables -L` follows
iptables 1.8.9 (nf_tables): print_header(), print_rule_details(),
print_fragment(), the interfaces and addresses, then each match's and the
target's print function, with -n, -v, -x and --line-numbers as FMT_NUMERIC,
FMT_VIA|counters, exact counts and FMT_LINENUMBERS.
"""
import shlex
import socket

from tunrouter.core.hooks import engine_for
from tunrouter.rules import Engine, RuleSyntaxError, limits
from tunrouter.rules import matches as m
from tunrouter.rules import restore as parse_restore
from tunrouter.rules.model import TABLES, Chain, proto_name
from tunrouter.rules.recent import RecentMatch
from tunrouter.rules.save import chain_order
from tunrouter.rules.targets import LOG_LEVELS, Ct, Jump, Log, Notrack, Reject, Standard
from tunrouter.rules.values import format_ipv4, format_rate

_LEVEL_NAMES = {0: "emerg", 1: "alert", 2: "crit", 3: "error", 4: "warning", 5: "notice",
                6: "info", 7: "debug"}
assert all(LOG_LEVELS[n] == v for v, n in _LEVEL_NAMES.items())
_ICMP_NAMES = {}
for _name, _v in m.ICMP_TYPES.items():
    _ICMP_NAMES.setdefault(_v, _name)


def _num(n: int, exact: bool) -> str:
    """xtables_print_num() in a table: %8llu with -x, else %5llu with K/M/G/T beyond 99999."""
    if exact:
        return "%8d " % n
    if n <= 99999:
        return "%5d " % n
    for suffix in "KMG":
        n = (n + 500) // 1000
        if n <= 9999:
            return "%4d%s " % (n, suffix)
    return "%4dT " % ((n + 500) // 1000)


def _num_notable(n: int, exact: bool) -> str:
    if exact or n <= 99999:
        return "%d " % n
    for suffix in "KMG":
        n = (n + 500) // 1000
        if n <= 9999:
            return "%d%s " % (n, suffix)
    return "%dT " % ((n + 500) // 1000)


def _port(port: int, proto: str, numeric: bool) -> str:
    if not numeric:
        try:
            return socket.getservbyport(port, proto)
        except OSError:
            pass
    return str(port)


def _ports(name: str, ports, inv: bool, proto: str, numeric: bool) -> str:
    if ports is None or ports == (0, 65535):
        return ""
    lo, hi = ports
    bang = "!" if inv else ""
    if lo == hi:
        return f" {name}:{bang}{_port(lo, proto, numeric)}"
    return f" {name}s:{bang}{_port(lo, proto, numeric)}:{_port(hi, proto, numeric)}"


def _tcp_flags(value: int, numeric: bool) -> str:
    if numeric:
        return "0x%02X" % value
    names = [n for n, bit in m.TCP_FLAGS.items() if bit and n not in ("ALL", "NONE")
             and value & bit]
    return ",".join(names) or "NONE"


def _match_text(x, numeric: bool) -> str:
    """One match as `iptables -L` prints it (with its leading space)."""
    if isinstance(x, (m.TcpMatch, m.UdpMatch)):
        proto = x.name
        out = f" {proto}" + _ports("spt", x.sport, x.sport_inv, proto, numeric) \
            + _ports("dpt", x.dport, x.dport_inv, proto, numeric)
        if proto == "tcp":
            if x.option is not None:
                out += f" option={'!' if x.option_inv else ''}{x.option}"
            if x.flags is not None and (x.flags[0] or x.flags_inv):
                out += (f" flags:{'!' if x.flags_inv else ''}{_tcp_flags(x.flags[0], numeric)}"
                        f"/{_tcp_flags(x.flags[1], numeric)}")
        return out
    if isinstance(x, m.StateMatch):
        return f" {'! ' if x.inv else ''}state {m._flag_names(x.state, m.STATES, '')}"
    if isinstance(x, m.CommentMatch):
        return f" /* {x.comment} */"
    if isinstance(x, limits.LimitMatch):
        return f" limit: avg {format_rate(x.avg, limits.XT_LIMIT_SCALE)[0]} burst {x.burst}"
    if isinstance(x, m.IcmpMatch):
        bang = "!" if x.inv else ""
        if numeric:
            out = f" {bang}icmptype {x.type}"
            if x.code_min == x.code_max:
                out += f" code {x.code_min}"
            elif (x.code_min, x.code_max) != (0, 0xFF):
                out += f" codes {x.code_min}-{x.code_max}"
            return out
        name = _ICMP_NAMES.get((x.type, x.code_min, x.code_max))
        if name is None:
            name = f"type {x.type} code {x.code_min}"
        return f" icmp {bang}{name}"
    if isinstance(x, m.MultiportMatch):
        proto = "tcp"
        items = ",".join(_port(lo, proto, numeric) if lo == hi
                         else f"{_port(lo, proto, numeric)}:{_port(hi, proto, numeric)}"
                         for lo, hi in x.ports)
        return f" multiport {x.which} {'!' if x.inv else ''}{items}"
    if isinstance(x, m.TtlMatch):
        op = {"eq": "==", "ne": "!=", "lt": "<", "gt": ">"}[x.mode]
        return f" TTL match TTL {op} {x.ttl}"
    if isinstance(x, m.LengthMatch):
        span = str(x.lo) if x.lo == x.hi else f"{x.lo}:{x.hi}"
        return f" length {'!' if x.inv else ''}{span}"
    text = _MORE_PRINTERS.get(type(x))
    if text is not None:
        return text(x)
    # Matches without a -L printer of their own show their iptables-save options.
    return f" {x.name} {x.save()}"


def _bang(inv: bool, space: str = " ") -> str:
    return "!" + space if inv else ""


def _addr_mask(addr: int, plen: int) -> str:
    a = ".".join(str(addr >> s & 0xFF) for s in (24, 16, 8, 0))
    return a if plen == 32 else f"{a}/{plen}"


def _range(span) -> str:
    lo, hi = span
    return str(lo) if lo == hi else f"{lo}:{hi}"


def _iprange(x) -> str:
    # libxt_iprange: "source IP range [! ]A-B", "destination IP range [! ]A-B"
    out = ""
    for word, span, inv in (("source", x.src, x.src_inv), ("destination", x.dst, x.dst_inv)):
        if span is not None:
            out += f" {word} IP range {_bang(inv)}{_addr_mask(span[0], 32)}-{_addr_mask(span[1], 32)}"
    return out


def _addrtype(x) -> str:
    # libxt_addrtype: " ADDRTYPE match src-type [!]T,... dst-type [!]T,... limit-in|limit-out"
    out = " ADDRTYPE match"
    for word, value, inv in (("src-type", x.src, x.src_inv), ("dst-type", x.dst, x.dst_inv)):
        if value:
            # The match keeps a bit per route type: 1 << RTN_*.
            names = ",".join(n for n, rtn in m.ADDRTYPES.items() if value >> rtn & 1)
            out += f" {word} {'!' if inv else ''}{names}"
    if x.iface:
        out += f" limit-{x.iface}"
    return out


def _hashlimit(x) -> str:
    # libxt_hashlimit's print: the rate and burst always, the rest when not the default,
    # which is exactly what its canonical save text carries.
    opts = dict(zip(*[iter(shlex.split(x.save()))] * 2))
    out = f" limit: {'above' if x.above else 'up to'} "
    out += opts.get("--hashlimit-above") or opts.get("--hashlimit-upto")
    out += f" burst {x.config.burst}"
    if "--hashlimit-mode" in opts:
        out += " mode " + opts["--hashlimit-mode"].replace(",", "-")
    for option, word in (("size", "htable-size"), ("max", "htable-max"),
                         ("gcinterval", "htable-gcinterval"), ("expire", "htable-expire")):
        if f"--hashlimit-htable-{option}" in opts:
            out += f" {word} {opts[f'--hashlimit-htable-{option}']}"
    for option in ("srcmask", "dstmask"):
        if f"--hashlimit-{option}" in opts:
            out += f" {option} {opts[f'--hashlimit-{option}']}"
    return out


def _recent(x) -> str:
    # libxt_recent: " [!] recent: SET|CHECK|UPDATE|REMOVE [seconds: N] [reap] [hit_count: N]
    # [TTL-Match] name: NAME side: source|dest mask: A.B.C.D"
    out = " !" if x.inv else ""
    out += " recent: " + {"set": "SET", "rcheck": "CHECK", "update": "UPDATE", "remove": "REMOVE"}[x.cmd]
    if x.seconds:
        out += f" seconds: {x.seconds}"
    if x.reap:
        out += " reap"
    if x.hitcount:
        out += f" hit_count: {x.hitcount}"
    if x.rttl:
        out += " TTL-Match"
    return out + f" name: {x.table} side: {'dest' if x.rdest else 'source'} mask: {_addr_mask(x.mask, 32)}"


def _string(x) -> str:
    # libxt_string: printable patterns quoted (with \ and " escaped), others as |hex|
    if all(0x20 <= b < 0x7F for b in x.pattern):
        text = x.pattern.decode().replace("\\", "\\\\").replace('"', '\\"')
    else:
        text = "|" + x.pattern.hex() + "|"
    out = f' STRING match {"!" if x.inv else ""} "{text}" ALGO name {x.algo}'
    if x.start:
        out += f" FROM {x.start}"
    if x.stop != 65535:
        out += f" TO {x.stop}"
    return out + (" ICASE" if x.icase else "")


def _conntrack(x) -> str:
    # libxt_conntrack's conntrack_dump, in its order, "! " before an inverted option.
    out = ""

    def opt(inv, word, text):
        return f"{' !' if inv else ''} {word} {text}"
    if x.state is not None:
        out += opt(x.state_inv, "ctstate", m._flag_names(x.state, m.CTSTATES, ""))
    if x.proto is not None:
        out += opt(x.proto_inv, "ctproto", x.proto)
    for word in ("origsrc", "origdst", "replsrc", "repldst"):
        value = getattr(x, word)
        if value is not None:
            out += opt(getattr(x, word + "_inv"), "ct" + word, _addr_mask(*value))
    for word in ("origsrcport", "origdstport", "replsrcport", "repldstport"):
        value = getattr(x, word)
        if value is not None:
            out += opt(getattr(x, word + "_inv"), "ct" + word, _range(value))
    if x.status is not None:
        out += opt(x.status_inv, "ctstatus", m._flag_names(x.status, m.CTSTATUS, "NONE"))
    if x.expire is not None:
        out += opt(x.expire_inv, "ctexpire", _range(x.expire))
    if x.reply_dir is not None:
        out += f" ctdir {'REPLY' if x.reply_dir else 'ORIGINAL'}"
    return out


_MORE_PRINTERS = {
    m.IprangeMatch: _iprange,
    m.MacMatch: lambda x: f" MAC {_bang(x.inv)}{':'.join('%02X' % b for b in x.mac)}",
    m.AddrtypeMatch: _addrtype,
    limits.ConnlimitMatch: lambda x: (f" #conn {'dst' if x.daddr else 'src'}/{x.mask} "
                                      f"{'>' if x.above else '<='} {x.limit}"),
    limits.HashlimitMatch: _hashlimit,
    RecentMatch: _recent,
    m.StringMatch: _string,
    m.HelperMatch: lambda x: f' helper match {_bang(x.inv)}"{x.helper}"',
    m.ConntrackMatch: _conntrack,
}


def _target_name(tg) -> str:
    if tg is None:
        return ""
    if isinstance(tg, Standard):
        return tg.verdict
    if isinstance(tg, Jump):
        return tg.chain
    if isinstance(tg, Notrack):
        return "CT"                 # iptables-nft lists NOTRACK as the CT it becomes
    return tg.name


def _target_text(tg, numeric: bool) -> str:
    if isinstance(tg, Jump):
        return " [goto]" if tg.goto else ""
    if isinstance(tg, Log):
        if numeric:
            flags = (tg.tcp_sequence | tg.tcp_options << 1 | tg.ip_options << 2 | tg.uid << 3
                     | tg.macdecode << 5)
            out = f" LOG flags {flags} level {tg.level}"
        else:
            out = f" LOG level {_LEVEL_NAMES[tg.level]}"
            for on, word in ((tg.tcp_sequence, "tcp-sequence"), (tg.tcp_options, "tcp-options"),
                             (tg.ip_options, "ip-options"), (tg.uid, "uid"),
                             (tg.macdecode, "macdecode")):
                if on:
                    out += " " + word
        if tg.prefix:
            out += f' prefix "{tg.prefix}"'
        return out
    if isinstance(tg, Reject):
        return f" reject-with {tg.reject_with}"
    if isinstance(tg, Notrack):
        return " NOTRACK"
    if isinstance(tg, Ct):
        return " CT notrack" if tg.notrack else " CT"
    if tg is None or isinstance(tg, Standard):
        return ""
    return f" {tg.save()}"


def _addr(addr: int, plen: int, inv: bool, numeric: bool) -> str:
    if plen == 0 and not numeric:
        text = "anywhere"
    else:
        text = format_ipv4(addr) + ("" if plen == 32 else f"/{plen}")
    return ("!" if inv else " ") + "%-19s " % text


def _iface(name: str, inv: bool, numeric: bool) -> str:
    return ("!" if inv else "") + (name or ("*" if numeric else "any"))


def _empty_table(name: str) -> list[Chain]:
    return [Chain(h.name, "ACCEPT") for h in TABLES[name]]


def listing(engine: Engine | None, table: str, chain: str | None, numeric: bool, verbose: bool,
            exact: bool, line_numbers: bool) -> str:
    """`iptables -t TABLE -L [CHAIN]` with -n -v -x --line-numbers."""
    if table not in TABLES:
        raise ValueError(f"can't initialize iptables table `{table}': Table does not exist")
    t = engine.ruleset.table(table) if engine is not None else None
    chains = chain_order(t) if t is not None else _empty_table(table)
    if chain is not None:
        chains = [c for c in chains if c.name == chain]
        if not chains:
            raise ValueError(f"chain `{chain}' in table `{table}' does not exist")
    refs: dict[str, int] = {}
    if t is not None:
        for c in t.chains:
            for r in c.rules:
                if isinstance(r.target, Jump):
                    refs[r.target.chain] = refs.get(r.target.chain, 0) + 1

    def counters(name, i):
        if t is None:
            return (0, 0)
        return engine.counters(table, name, i)

    out = []
    for n, c in enumerate(chains):
        if n:
            out.append("")
        if c.builtin:
            head = f"Chain {c.name} (policy {c.policy}"
            if verbose:
                p, b = counters(c.name, None)
                head += f" {_num_notable(p, exact)}packets, {_num_notable(b, exact)}bytes"
            out.append(head + ")")
        else:
            out.append(f"Chain {c.name} ({refs.get(c.name, 0)} references)")
        cols = "%-4s " % "num" if line_numbers else ""
        if verbose:
            cols += ("%8s %10s " % ("pkts", "bytes")) if exact else ("%5s %5s " % ("pkts", "bytes"))
        cols += "%-9s " % "target" + " prot " + "opt"
        if verbose:
            cols += " %-6s %-6s " % ("in", "out")
        cols += " %-19s " % "source" + " %-19s " % "destination"
        out.append(cols)
        for i, r in enumerate(c.rules):
            ipf = r.ipf
            line = "%-4d " % (i + 1) if line_numbers else ""
            if verbose:
                p, b = counters(c.name, i)
                line += _num(p, exact) + _num(b, exact)
            line += "%-9s " % _target_name(r.target)
            line += "!" if ipf.proto_inv else " "
            line += "%-5s" % (str(ipf.proto) if numeric else
                              ("all" if ipf.proto == 0 else proto_name(ipf.proto)))
            if ipf.frag is None:
                line += "-- "
            else:
                line += ("-f " if ipf.frag else "!f ")
            if verbose:
                line += " %-6s " % _iface(ipf.iniface, ipf.iniface_inv, numeric)
                line += "%-6s " % _iface(ipf.outiface, ipf.outiface_inv, numeric)
            else:
                line += ""
            line += _addr(ipf.src, ipf.src_len, ipf.src_inv, numeric)
            line += _addr(ipf.dst, ipf.dst_len, ipf.dst_inv, numeric)
            extra = "".join(_match_text(x, numeric) for x in r.matches)
            extra += _target_text(r.target, numeric)
            out.append(line + extra)
    return "".join(s + "\n" for s in out)


def rules_handlers(router, drain) -> dict:
    """Handlers over router.rules; drain() writes out pending LOG lines before a swap."""

    def restore(req):
        text = req.get("text", "")
        noflush, counters = bool(req.get("noflush")), bool(req.get("counters"))
        current = router.rules
        try:
            if req.get("test"):
                parse_restore(text, current.ruleset if current is not None and noflush else None,
                              noflush, counters)
                return {"loaded": False}
            engine = engine_for(text, current, noflush, counters)
        except RuleSyntaxError as e:
            raise ValueError(str(e))
        drain()
        router.set_rules(engine)
        return {"loaded": True}

    def save(req):
        engine = router.rules
        table = req.get("table")
        if table is not None and table not in TABLES:
            raise ValueError(f"table '{table}' does not exist")
        if engine is None:
            return ""
        return engine.save(counters=bool(req.get("counters")), table=table)

    def lst(req):
        return listing(router.rules, req.get("table") or "filter", req.get("chain"),
                       bool(req.get("numeric")), bool(req.get("verbose")),
                       bool(req.get("exact")), bool(req.get("line_numbers")))

    def zero(req):
        table, chain = req.get("table") or "filter", req.get("chain")
        if table not in TABLES:
            raise ValueError(f"can't initialize iptables table `{table}': Table does not exist")
        engine = router.rules
        t = engine.ruleset.table(table) if engine is not None else None
        names = [c.name for c in t.chains] if t is not None else [h.name for h in TABLES[table]]
        if chain is not None and chain not in names:
            raise ValueError(f"chain `{chain}' in table `{table}' does not exist")
        if engine is not None:
            engine.zero(table, chain)

    return {"ipt_restore": restore, "ipt_save": save, "ipt_list": lst, "ipt_zero": zero}

