"""The -j targets: one small frozen class each, and the TARGETS table at the end.

Standard verdicts (ACCEPT, DROP, RETURN) and chain jumps are handled by the
engine itself, as ipt_do_table() handles XT_STANDARD_TARGET.  The other
targets mirror the kernel modules and libxt_*.c save functions of iptables
1.8.9:

* terminal (the engine returns the object as the verdict): REJECT carries
  the ICMP error or TCP reset the router must build; SNAT, DNAT, MASQUERADE
  and REDIRECT carry the NAT decision for the router's NAT code.
* non-terminal (XT_CONTINUE): LOG and NFLOG append a record to the engine's
  side-output lists; NOTRACK and CT mark the packet's context.

Tables and hooks are the ones this kernel accepts each target in (checked
against the reference kernel with iptables-nft: REJECT only in filter, the NAT
targets only in nat and only at their hooks, CT and NOTRACK only in raw).
"""
from dataclasses import dataclass

from tunrouter.rules.base import Opt, Opts, RuleInfo, Target
from tunrouter.rules.errors import OptionError
from tunrouter.rules.model import IPPROTO_TCP, IPPROTO_UDP, Hook
from tunrouter.rules.values import U32, format_ipv4, parse_ipv4, parse_uint, quote

_NAT = frozenset({"nat"})


@dataclass(frozen=True, slots=True)
class Standard(Target):
    """ACCEPT, DROP or RETURN (XT_STANDARD_TARGET with a verdict)."""
    verdict: str

    def __repr__(self) -> str:
        return self.verdict


ACCEPT = Standard("ACCEPT")
DROP = Standard("DROP")
RETURN = Standard("RETURN")
STANDARD = {"ACCEPT": ACCEPT, "DROP": DROP, "RETURN": RETURN}


@dataclass(frozen=True, slots=True)
class Jump(Target):
    """-j CHAIN (push a return point) or -g CHAIN (goto: no return point)."""
    chain: str
    goto: bool = False


# ---------------------------------------------------------------- REJECT

# libipt_REJECT reject_table: name, alias, ICMP type/code (None: TCP reset).
REJECT_WITH = {
    "icmp-net-unreachable": ("net-unreach", (3, 0)),
    "icmp-host-unreachable": ("host-unreach", (3, 1)),
    "icmp-proto-unreachable": ("proto-unreach", (3, 2)),
    "icmp-port-unreachable": ("port-unreach", (3, 3)),
    "icmp-net-prohibited": ("net-prohib", (3, 9)),
    "icmp-host-prohibited": ("host-prohib", (3, 10)),
    "icmp-admin-prohibited": ("admin-prohib", (3, 13)),
    "tcp-reset": ("tcp-rst", None),
}
_REJECT_ALIASES = {alias: name for name, (alias, _) in REJECT_WITH.items()}
_FILTER_HOOKS = frozenset({Hook.INPUT, Hook.FORWARD, Hook.OUTPUT})


@dataclass(frozen=True, slots=True)
class Reject(Target):
    """REJECT: drop the packet and answer it (kernel ipt_REJECT.c).

    icmp is (type, code) of the ICMP error to send, or None for a TCP RST
    (nf_send_reset).  The router builds either; the engine only decides.
    """
    reject_with: str = "icmp-port-unreachable"

    name = "REJECT"
    TABLES = frozenset({"filter"})
    HOOKS = _FILTER_HOOKS
    OPTIONS = {"--reject-with": Opt("with")}

    @property
    def icmp(self) -> tuple[int, int] | None:
        return REJECT_WITH[self.reject_with][1]

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "Reject":
        word = opts.get("with", "icmp-port-unreachable")
        name = word if word in REJECT_WITH else _REJECT_ALIASES.get(word)
        if name is None:
            raise OptionError(f'unknown --reject-with type "{word}"')
        if name == "tcp-reset" and info.proto_is(IPPROTO_TCP) is None:
            raise OptionError("REJECT --reject-with tcp-reset needs -p tcp")
        return cls(name)

    def save(self) -> str:
        return f"--reject-with {self.reject_with}"


# ---------------------------------------------------------------- LOG, NFLOG

LOG_LEVELS = {"emerg": 0, "panic": 0, "alert": 1, "crit": 2, "error": 3, "warning": 4,
              "notice": 5, "info": 6, "debug": 7}
LOG_LEVEL_DEFAULT = 4
LOG_PREFIX_MAX = 29          # the kernel's prefix[30]
NFLOG_PREFIX_MAX = 63        # xt_nflog_info.prefix[64]


@dataclass(frozen=True, slots=True)
class Log(Target):
    """LOG: the kernel's log line for this packet (nf_log_syslog.c), then continue.

    --log-uid prints UID=/GID= only for a packet owned by a local socket;
    the router owns none, so, like the kernel for forwarded traffic, its lines
    never carry them.
    """
    prefix: str = ""
    level: int = LOG_LEVEL_DEFAULT
    tcp_sequence: bool = False
    tcp_options: bool = False
    ip_options: bool = False
    uid: bool = False
    macdecode: bool = False

    name = "LOG"
    TERMINAL = False
    OPTIONS = {"--log-prefix": Opt("prefix"), "--log-level": Opt("level"),
               "--log-tcp-sequence": Opt("tcp_sequence", nargs=0),
               "--log-tcp-options": Opt("tcp_options", nargs=0),
               "--log-ip-options": Opt("ip_options", nargs=0),
               "--log-uid": Opt("uid", nargs=0), "--log-macdecode": Opt("macdecode", nargs=0)}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "Log":
        prefix = opts.get("prefix", "")
        if "prefix" in opts and not prefix:
            raise OptionError("LOG: --log-prefix must not be empty")
        if len(prefix.encode()) > LOG_PREFIX_MAX:
            raise OptionError(f"LOG: --log-prefix longer than {LOG_PREFIX_MAX} bytes")
        level = opts.get("level", str(LOG_LEVEL_DEFAULT))
        level = LOG_LEVELS[level] if level in LOG_LEVELS else parse_uint(level, 0, 7, "log level")
        return cls(prefix, level, *(k in opts for k in (
            "tcp_sequence", "tcp_options", "ip_options", "uid", "macdecode")))

    def save(self) -> str:
        out = []
        if self.prefix:
            out.append(f"--log-prefix {quote(self.prefix)}")
        if self.level != LOG_LEVEL_DEFAULT:
            out.append(f"--log-level {self.level}")
        for flag, opt in ((self.tcp_sequence, "--log-tcp-sequence"),
                          (self.tcp_options, "--log-tcp-options"),
                          (self.ip_options, "--log-ip-options"), (self.uid, "--log-uid"),
                          (self.macdecode, "--log-macdecode")):
            if flag:
                out.append(opt)
        return " ".join(out)

    def fire(self, ctx, out) -> None:
        out.log(self, ctx)


@dataclass(frozen=True, slots=True)
class Nflog(Target):
    """NFLOG: a copy of the packet (at most size bytes) for the capture of its group, then continue.

    threshold is the number of packets the sink may gather before it writes
    them out (nfnetlink_log's batching).
    """
    group: int = 0
    prefix: str = ""
    size: int | None = None
    threshold: int = 1

    name = "NFLOG"
    TERMINAL = False
    OPTIONS = {"--nflog-group": Opt("group"), "--nflog-prefix": Opt("prefix"),
               "--nflog-size": Opt("size"), "--nflog-range": Opt("range"),
               "--nflog-threshold": Opt("threshold")}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "Nflog":
        if "range" in opts:
            raise OptionError("NFLOG: --nflog-range never worked in the kernel; "
                              "use --nflog-size")
        prefix = opts.get("prefix", "")
        if len(prefix.encode()) > NFLOG_PREFIX_MAX:
            raise OptionError(f"NFLOG: --nflog-prefix longer than {NFLOG_PREFIX_MAX} bytes")
        return cls(parse_uint(opts.get("group", "0"), 0, 65535, "--nflog-group"), prefix,
                   parse_uint(opts.get("size"), 0, U32, "--nflog-size")
                   if "size" in opts else None,
                   parse_uint(opts.get("threshold", "1"), 1, 65535, "--nflog-threshold"))

    def save(self) -> str:
        out = []
        if self.prefix:
            out.append(f"--nflog-prefix {quote(self.prefix)}")
        if self.group:
            out.append(f"--nflog-group {self.group}")
        if self.size is not None:
            out.append(f"--nflog-size {self.size}")
        if self.threshold != 1:
            out.append(f"--nflog-threshold {self.threshold}")
        return " ".join(out)

    def fire(self, ctx, out) -> None:
        out.nflog(self, ctx)


# ---------------------------------------------------------------- NOTRACK, CT

_RAW = frozenset({"raw"})
# The helpers tunrouter attaches with -j CT --helper, and the protocol each
# serves (nf_conntrack_helper_try_module_get() looks a helper up by both).
CT_HELPERS = {"ftp": IPPROTO_TCP, "irc": IPPROTO_TCP, "tftp": IPPROTO_UDP, "amanda": IPPROTO_UDP}


def register_ct_helper(name: str, proto: int) -> None:
    """Let CT --helper name a helper beyond the kernel's (a third-party one) for proto."""
    CT_HELPERS.setdefault(name, proto)


@dataclass(frozen=True, slots=True)
class Notrack(Target):
    """NOTRACK: the packet is not tracked (an alias of CT --notrack)."""

    name = "NOTRACK"
    TABLES = _RAW
    TERMINAL = False

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "Notrack":
        return cls()

    def save(self) -> str:
        return ""

    def fire(self, ctx, out) -> None:
        ctx.notrack = True


@dataclass(frozen=True, slots=True)
class Ct(Target):
    """CT: the conntrack template for the packet's new connection (kernel xt_CT.c).

    --notrack leaves the packet untracked; --helper NAME attaches a helper to
    the connection the packet creates.  No option: the default template.
    """
    notrack: bool = False
    helper: str | None = None

    name = "CT"
    TABLES = _RAW
    TERMINAL = False
    OPTIONS = {"--notrack": Opt("notrack", nargs=0), "--helper": Opt("helper")}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "Ct":
        helper = opts.get("helper")
        if helper is not None:
            if "notrack" in opts:
                raise OptionError("CT: --notrack and --helper exclude each other")
            proto = CT_HELPERS.get(helper)
            if proto is None:
                raise OptionError(f'CT: unknown helper "{helper}" '
                                  f'(known: {", ".join(CT_HELPERS)})')
            if info.proto_is(proto) is None:
                raise OptionError(f"CT --helper {helper} needs -p "
                                  f"{'tcp' if proto == IPPROTO_TCP else 'udp'}")
        return cls("notrack" in opts, helper)

    def save(self) -> str:
        out = []
        if self.notrack:
            out.append("--notrack")
        if self.helper:
            out.append(f"--helper {self.helper}")
        return " ".join(out)

    def fire(self, ctx, out) -> None:
        if self.notrack:
            ctx.notrack = True
        elif self.helper:
            ctx.ct_helper = self.helper


# ---------------------------------------------------------------- NAT

def _parse_ports(text: str, what: str) -> tuple[int, int]:
    first, dash, last = text.partition("-")
    lo = parse_uint(first, 1, 65535, what)
    hi = parse_uint(last, 1, 65535, what) if dash else lo
    if lo > hi:
        raise OptionError(f'{what} range "{text}" runs backwards')
    return lo, hi


def _format_ports(ports: tuple[int, int]) -> str:
    return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}-{ports[1]}"


def _need_ports_proto(info: RuleInfo, target: str) -> None:
    if info.proto_is(IPPROTO_TCP, IPPROTO_UDP) is None:
        raise OptionError(f"{target}: a port needs -p tcp or -p udp")


def _parse_nat_range(text: str, info: RuleInfo, target: str, need_addr: bool):
    """`[a[-b]][:p[-q]]` as ((a, b) | None, (p, q) | None)."""
    addr_text, colon, port_text = text.partition(":")
    addrs = ports = None
    if addr_text:
        first, dash, last = addr_text.partition("-")
        lo = parse_ipv4(first)
        hi = parse_ipv4(last) if dash else lo
        if lo > hi:
            raise OptionError(f'{target}: address range "{addr_text}" runs backwards')
        addrs = (lo, hi)
    elif need_addr:
        raise OptionError(f'{target}: "{text}" has no address')
    if colon:
        if "/" in port_text:
            raise OptionError(f"{target}: port shifts (/base) are not supported")
        _need_ports_proto(info, target)
        ports = _parse_ports(port_text, "port")
    if addrs is None and ports is None:
        raise OptionError(f'{target}: empty range "{text}"')
    return addrs, ports


def _format_nat_range(addrs, ports) -> str:
    text = ""
    if addrs is not None:
        text = format_ipv4(addrs[0])
        if addrs[1] != addrs[0]:
            text += "-" + format_ipv4(addrs[1])
    if ports is not None:
        text += ":" + _format_ports(ports)
    return text


def _flags(obj, names) -> list[str]:
    return [f"--{n.replace('_', '-')}" for n in names if getattr(obj, n)]


@dataclass(frozen=True, slots=True)
class Snat(Target):
    """SNAT --to-source a[-b][:p[-q]]: the source to map a new connection to."""
    addrs: tuple[int, int] | None
    ports: tuple[int, int] | None = None
    random: bool = False
    random_fully: bool = False
    persistent: bool = False

    name = "SNAT"
    TABLES = _NAT
    HOOKS = frozenset({Hook.POSTROUTING, Hook.INPUT})
    OPTION_NAME = "--to-source"
    NEED_ADDR = True
    OPTIONS = {"--to-source": Opt("to"), "--random": Opt("random", nargs=0),
               "--random-fully": Opt("random_fully", nargs=0),
               "--persistent": Opt("persistent", nargs=0)}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo):
        opts.require("to", cls.name, cls.OPTION_NAME)
        addrs, ports = _parse_nat_range(opts.get("to"), info, cls.name, cls.NEED_ADDR)
        return cls(addrs, ports, "random" in opts, "random_fully" in opts, "persistent" in opts)

    def save(self) -> str:
        return " ".join([f"{self.OPTION_NAME} {_format_nat_range(self.addrs, self.ports)}"]
                        + _flags(self, ("random", "random_fully", "persistent")))


@dataclass(frozen=True, slots=True)
class Dnat(Snat):
    """DNAT --to-destination [a[-b]][:p[-q]]: the destination of a new connection."""

    name = "DNAT"
    HOOKS = frozenset({Hook.PREROUTING, Hook.OUTPUT})
    OPTION_NAME = "--to-destination"
    NEED_ADDR = False
    OPTIONS = {**Snat.OPTIONS, "--to-destination": Opt("to")}
    del OPTIONS["--to-source"]


@dataclass(frozen=True, slots=True)
class Masquerade(Target):
    """MASQUERADE: SNAT to the output port's address, optionally into a port range."""
    ports: tuple[int, int] | None = None
    random: bool = False
    random_fully: bool = False

    name = "MASQUERADE"
    TABLES = _NAT
    HOOKS = frozenset({Hook.POSTROUTING})
    OPTIONS = {"--to-ports": Opt("ports"), "--random": Opt("random", nargs=0),
               "--random-fully": Opt("random_fully", nargs=0)}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo):
        ports = None
        if "ports" in opts:
            _need_ports_proto(info, cls.name)
            ports = _parse_ports(opts.get("ports"), "port")
        return cls(ports, "random" in opts, "random_fully" in opts)

    def save(self) -> str:
        out = [f"--to-ports {_format_ports(self.ports)}"] if self.ports else []
        return " ".join(out + _flags(self, ("random", "random_fully")))


@dataclass(frozen=True, slots=True)
class Redirect(Target):
    """REDIRECT: DNAT to the input port's own address (port range optional)."""
    ports: tuple[int, int] | None = None
    random: bool = False

    name = "REDIRECT"
    TABLES = _NAT
    HOOKS = frozenset({Hook.PREROUTING, Hook.OUTPUT})
    OPTIONS = {"--to-ports": Opt("ports"), "--random": Opt("random", nargs=0)}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo):
        ports = None
        if "ports" in opts:
            _need_ports_proto(info, cls.name)
            ports = _parse_ports(opts.get("ports"), "port")
        return cls(ports, "random" in opts)

    def save(self) -> str:
        out = [f"--to-ports {_format_ports(self.ports)}"] if self.ports else []
        return " ".join(out + _flags(self, ("random",)))


# The -j table: every target tunrouter has besides ACCEPT/DROP/RETURN and chains.
TARGETS: dict[str, type[Target]] = {
    "REJECT": Reject, "LOG": Log, "NFLOG": Nflog, "NOTRACK": Notrack, "CT": Ct,
    "SNAT": Snat, "DNAT": Dnat, "MASQUERADE": Masquerade, "REDIRECT": Redirect,
}
