"""The -m matches: one small frozen class each, and the MATCHES table at the end.

Each class mirrors a kernel xt_<name>.c match function and the libxt_<name>.c
save function of iptables 1.8.9: parse() takes the options the parser
collected, save() prints them in iptables-save's order and spelling, and
__call__(ctx) decides for one packet.  "hotdrop" is the kernel's word for a
packet a match could not read: the match raises HotDrop and the engine drops
the packet.  The stateful matches (limit, hashlimit, connlimit, recent) live
in limits.py and recent.py; their state is kept by the engine.
"""
from dataclasses import dataclass

from tunrouter.conntrack.conn import CtInfo
from tunrouter.rules.base import Match, Opt, Opts, RuleInfo
from tunrouter.rules.context import (
    RTN_ANYCAST,
    RTN_BLACKHOLE,
    RTN_BROADCAST,
    RTN_LOCAL,
    RTN_MULTICAST,
    RTN_NAT,
    RTN_PROHIBIT,
    RTN_THROW,
    RTN_UNICAST,
    RTN_UNREACHABLE,
    RTN_UNSPEC,
    RTN_XRESOLVE,
    HotDrop,
)
from tunrouter.rules.errors import OptionError
from tunrouter.rules.limits import ConnlimitMatch, HashlimitMatch, LimitMatch
from tunrouter.rules.model import (
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    PROTO_NUMBERS,
    Hook,
)
from tunrouter.rules.recent import RecentMatch
from tunrouter.rules.values import (
    U32,
    format_ipv4,
    format_mac,
    format_range,
    parse_ipv4,
    parse_mac,
    parse_port_range,
    parse_prefix,
    parse_range,
    parse_uint,
    prefix_mask,
    quote,
)

FULL_PORTS = (0, 65535)
# struct xt_*: names and strings have fixed sizes in the kernel ABI.
MAX_COMMENT = 255            # XT_MAX_COMMENT_LEN - 1
MAX_HELPER_NAME = 29         # xt_helper_info.name[30]
MAX_STRING_PATTERN = 128     # XT_STRING_MAX_PATTERN_SIZE


def _flag_names(value: int, names: dict[str, int], empty: str) -> str:
    """Comma list of the names whose bits are in value, in the table's order."""
    out = [name for name, bit in names.items() if bit and value & bit]
    return ",".join(out) if out else empty


def _parse_flag_list(text: str, names: dict[str, int], what: str) -> int:
    value = 0
    for word in text.split(","):
        bit = names.get(word.upper())
        if bit is None:
            raise OptionError(f'unknown {what} "{word}"')
        value |= bit
    return value


def _inv(flag: bool) -> str:
    return "! " if flag else ""


# ---------------------------------------------------------------- tcp, udp, icmp

# libxt_tcp tcp_flag_names[]: parse and print order; ALL is every named flag.
TCP_FLAGS = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20,
             "ALL": 0x3F, "NONE": 0}
_PRINT_FLAGS = {k: v for k, v in TCP_FLAGS.items() if k not in ("ALL", "NONE")}
SYN_FLAGS = (0x17, 0x02)     # --syn: FIN,SYN,RST,ACK SYN


def _save_ports(opt: str, ports, inv: bool) -> list[str]:
    # libxt_tcp/udp: a range covering every port is left out, even inverted.
    if ports is None or ports == FULL_PORTS:
        return []
    return [f"{_inv(inv)}--{opt} {format_range(*ports)}"]


def _port_opts() -> dict[str, Opt]:
    return {"--source-port": Opt("sport", inv=True), "--sport": Opt("sport", inv=True),
            "--destination-port": Opt("dport", inv=True), "--dport": Opt("dport", inv=True)}


@dataclass(frozen=True, slots=True)
class TcpMatch(Match):
    """-m tcp (loaded by -p tcp): kernel xt_tcpudp.c tcp_mt()."""
    sport: tuple[int, int] | None = None
    sport_inv: bool = False
    dport: tuple[int, int] | None = None
    dport_inv: bool = False
    flags: tuple[int, int] | None = None     # (mask, comparison)
    flags_inv: bool = False
    option: int | None = None
    option_inv: bool = False

    name = "tcp"
    PROTO = IPPROTO_TCP
    OPTIONS = {**_port_opts(), "--tcp-flags": Opt("flags", nargs=2, inv=True),
               "--syn": Opt("flags", nargs=0, inv=True),
               "--tcp-option": Opt("option", inv=True)}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "TcpMatch":
        flags = opts.get("flags")
        if flags is True:
            flags = SYN_FLAGS
        elif flags is not None:
            flags = (_parse_flag_list(flags[0], TCP_FLAGS, "TCP flag"),
                     _parse_flag_list(flags[1], TCP_FLAGS, "TCP flag"))
        option = opts.get("option")
        return cls(
            sport=parse_port_range(opts.get("sport"), IPPROTO_TCP) if "sport" in opts else None,
            sport_inv=opts.inv("sport"),
            dport=parse_port_range(opts.get("dport"), IPPROTO_TCP) if "dport" in opts else None,
            dport_inv=opts.inv("dport"),
            flags=flags, flags_inv=opts.inv("flags"),
            option=parse_uint(option, 1, 255, "TCP option") if option is not None else None,
            option_inv=opts.inv("option"))

    def save(self) -> str:
        out = _save_ports("sport", self.sport, self.sport_inv)
        out += _save_ports("dport", self.dport, self.dport_inv)
        if self.option is not None:
            out.append(f"{_inv(self.option_inv)}--tcp-option {self.option}")
        if self.flags is not None and (self.flags[0] or self.flags_inv):
            mask, comp = self.flags
            out.append(f"{_inv(self.flags_inv)}--tcp-flags "
                       f"{_flag_names(mask, _PRINT_FLAGS, 'NONE')} "
                       f"{_flag_names(comp, _PRINT_FLAGS, 'NONE')}")
        return " ".join(out)

    def __call__(self, ctx) -> bool:
        if ctx.fragoff:
            # kernel: "Don't allow a fragment of TCP 8 bytes in" - offset 1 rewrites flags.
            if ctx.fragoff == 1:
                raise HotDrop
            return False
        d = ctx.desc
        off = d.hlen
        buf = d.buf
        if len(buf) < off + 20:
            raise HotDrop
        if self.sport is not None and \
                (self.sport[0] <= ctx.sport <= self.sport[1]) == self.sport_inv:
            return False
        if self.dport is not None and \
                (self.dport[0] <= ctx.dport <= self.dport[1]) == self.dport_inv:
            return False
        if self.flags is not None and \
                ((buf[off + 13] & self.flags[0]) == self.flags[1]) == self.flags_inv:
            return False
        if self.option is not None:
            return self._has_option(buf, off)
        return True

    def _has_option(self, buf, off: int) -> bool:
        """kernel tcp_find_option(): walk the options, kind 0/1 are one byte."""
        hlen = (buf[off + 12] >> 4) * 4
        if hlen < 20:
            raise HotDrop
        if len(buf) < off + hlen:
            raise HotDrop
        i, end = off + 20, off + hlen
        while i < end:
            if buf[i] == self.option:
                return not self.option_inv
            i += 1 if buf[i] < 2 or i + 1 >= end else (buf[i + 1] or 1)
        return self.option_inv


@dataclass(frozen=True, slots=True)
class UdpMatch(Match):
    """-m udp (loaded by -p udp): kernel xt_tcpudp.c udp_mt()."""
    sport: tuple[int, int] | None = None
    sport_inv: bool = False
    dport: tuple[int, int] | None = None
    dport_inv: bool = False

    name = "udp"
    PROTO = IPPROTO_UDP
    OPTIONS = _port_opts()

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "UdpMatch":
        return cls(
            sport=parse_port_range(opts.get("sport"), IPPROTO_UDP) if "sport" in opts else None,
            sport_inv=opts.inv("sport"),
            dport=parse_port_range(opts.get("dport"), IPPROTO_UDP) if "dport" in opts else None,
            dport_inv=opts.inv("dport"))

    def save(self) -> str:
        return " ".join(_save_ports("sport", self.sport, self.sport_inv)
                        + _save_ports("dport", self.dport, self.dport_inv))

    def __call__(self, ctx) -> bool:
        if ctx.fragoff:
            return False
        if len(ctx.desc.buf) < ctx.desc.hlen + 8:
            raise HotDrop
        if self.sport is not None and \
                (self.sport[0] <= ctx.sport <= self.sport[1]) == self.sport_inv:
            return False
        if self.dport is not None and \
                (self.dport[0] <= ctx.dport <= self.dport[1]) == self.dport_inv:
            return False
        return True


# libxt_icmp icmp_codes[]: name -> (type, code min, code max); type 0xFF is "any".
ICMP_TYPES = {
    "any": (0xFF, 0, 0xFF),
    "echo-reply": (0, 0, 0xFF), "pong": (0, 0, 0xFF),
    "destination-unreachable": (3, 0, 0xFF),
    "network-unreachable": (3, 0, 0), "host-unreachable": (3, 1, 1),
    "protocol-unreachable": (3, 2, 2), "port-unreachable": (3, 3, 3),
    "fragmentation-needed": (3, 4, 4), "source-route-failed": (3, 5, 5),
    "network-unknown": (3, 6, 6), "host-unknown": (3, 7, 7),
    "network-prohibited": (3, 9, 9), "host-prohibited": (3, 10, 10),
    "TOS-network-unreachable": (3, 11, 11), "TOS-host-unreachable": (3, 12, 12),
    "communication-prohibited": (3, 13, 13), "host-precedence-violation": (3, 14, 14),
    "precedence-cutoff": (3, 15, 15),
    "source-quench": (4, 0, 0xFF),
    "redirect": (5, 0, 0xFF), "network-redirect": (5, 0, 0), "host-redirect": (5, 1, 1),
    "TOS-network-redirect": (5, 2, 2), "TOS-host-redirect": (5, 3, 3),
    "echo-request": (8, 0, 0xFF), "ping": (8, 0, 0xFF),
    "router-advertisement": (9, 0, 0xFF),
    "router-solicitation": (10, 0, 0xFF),
    "time-exceeded": (11, 0, 0xFF), "ttl-exceeded": (11, 0, 0xFF),
    "ttl-zero-during-transit": (11, 0, 0), "ttl-zero-during-reassembly": (11, 1, 1),
    "parameter-problem": (12, 0, 0xFF),
    "ip-header-bad": (12, 0, 0), "required-option-missing": (12, 1, 1),
    "timestamp-request": (13, 0, 0xFF), "timestamp-reply": (14, 0, 0xFF),
    "address-mask-request": (17, 0, 0xFF), "address-mask-reply": (18, 0, 0xFF),
}
_ICMP_BY_LOWER = {k.lower(): v for k, v in ICMP_TYPES.items()}


def parse_icmp_type(text: str) -> tuple[int, int, int]:
    """A name from ICMP_TYPES (any case) or TYPE[/CODE] in decimal."""
    named = _ICMP_BY_LOWER.get(text.lower())
    if named is not None:
        return named
    icmp_type, slash, code = text.partition("/")
    if not icmp_type.isdigit() or (slash and not code.isdigit()):
        raise OptionError(f'unknown ICMP type "{text}"')
    t = parse_uint(icmp_type, 0, 255, "ICMP type")
    if slash:
        c = parse_uint(code, 0, 255, "ICMP code")
        return t, c, c
    return t, 0, 0xFF


@dataclass(frozen=True, slots=True)
class IcmpMatch(Match):
    """-m icmp (loaded by -p icmp): kernel ip_tables.c icmp_match()."""
    type: int = 0xFF
    code_min: int = 0
    code_max: int = 0xFF
    inv: bool = False

    name = "icmp"
    PROTO = IPPROTO_ICMP
    OPTIONS = {"--icmp-type": Opt("type", inv=True)}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "IcmpMatch":
        opts.require("type", "icmp", "--icmp-type")
        t, lo, hi = parse_icmp_type(opts.get("type"))
        return cls(t, lo, hi, opts.inv("type"))

    def save(self) -> str:
        if self.type == 0xFF:
            text = "any"
        elif (self.code_min, self.code_max) == (0, 0xFF):
            text = str(self.type)
        else:
            text = f"{self.type}/{self.code_min}"
        return f"{_inv(self.inv)}--icmp-type {text}"

    def __call__(self, ctx) -> bool:
        if ctx.fragoff:
            return False
        d = ctx.desc
        if len(d.buf) < d.hlen + 8:
            raise HotDrop
        t, c = d.buf[d.hlen], d.buf[d.hlen + 1]
        hit = self.type == 0xFF or (t == self.type and self.code_min <= c <= self.code_max)
        return hit != self.inv


# ---------------------------------------------------------------- conntrack, state

# --ctstate / --state bits (our own numbering; xt_conntrack keeps the same set).
ST_INVALID, ST_NEW, ST_RELATED, ST_ESTABLISHED, ST_UNTRACKED, ST_SNAT, ST_DNAT = (
    1, 2, 4, 8, 16, 32, 64)
# Print order of libxt_conntrack/libxt_state: INVALID,NEW,RELATED,ESTABLISHED,UNTRACKED,SNAT,DNAT.
CTSTATES = {"INVALID": ST_INVALID, "NEW": ST_NEW, "RELATED": ST_RELATED,
            "ESTABLISHED": ST_ESTABLISHED, "UNTRACKED": ST_UNTRACKED,
            "SNAT": ST_SNAT, "DNAT": ST_DNAT}
STATES = {k: v for k, v in CTSTATES.items() if k not in ("SNAT", "DNAT")}

# The state bit of each CtInfo value (XT_CONNTRACK_STATE_BIT(ctinfo)); the
# reply-direction values carry the same state.  Indexed by CtInfo, no dict.
STATE_BIT = [0] * (max(CtInfo) + 1)
for _info, _bit in ((CtInfo.ESTABLISHED, ST_ESTABLISHED), (CtInfo.RELATED, ST_RELATED),
                    (CtInfo.NEW, ST_NEW), (CtInfo.ESTABLISHED_REPLY, ST_ESTABLISHED),
                    (CtInfo.RELATED_REPLY, ST_RELATED), (CtInfo.UNTRACKED, ST_UNTRACKED),
                    (CtInfo.INVALID, ST_INVALID), (CtInfo.DROP, ST_INVALID)):
    STATE_BIT[_info] = _bit
del _info, _bit

# IPS_* status bits --ctstatus names (kernel enum ip_conntrack_status), print order.
IPS_EXPECTED, IPS_SEEN_REPLY, IPS_ASSURED, IPS_CONFIRMED = 1, 2, 4, 8
IPS_SRC_NAT, IPS_DST_NAT = 16, 32
_NAT_BITS = IPS_SRC_NAT | IPS_DST_NAT
CTSTATUS = {"NONE": 0, "EXPECTED": IPS_EXPECTED, "SEEN_REPLY": IPS_SEEN_REPLY,
            "ASSURED": IPS_ASSURED, "CONFIRMED": IPS_CONFIRMED}


def _tuple_addr(t, index: int) -> int:
    a = t[index]
    return (a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3]


@dataclass(frozen=True, slots=True)
class ConntrackMatch(Match):
    """-m conntrack, revision 3: kernel xt_conntrack.c conntrack_mt().

    Addresses keep their host bits (libxt_conntrack prints them as given) and
    are compared under the mask.  Fields are None when not given; each has
    its `!`.  Order of the checks is the kernel's; a packet without a
    connection matches only a rule that asks nothing but --ctstate.
    """
    state: int | None = None
    state_inv: bool = False
    proto: int | None = None
    proto_inv: bool = False
    origsrc: tuple[int, int] | None = None       # (address, prefix length)
    origsrc_inv: bool = False
    origdst: tuple[int, int] | None = None
    origdst_inv: bool = False
    replsrc: tuple[int, int] | None = None
    replsrc_inv: bool = False
    repldst: tuple[int, int] | None = None
    repldst_inv: bool = False
    origsrcport: tuple[int, int] | None = None
    origsrcport_inv: bool = False
    origdstport: tuple[int, int] | None = None
    origdstport_inv: bool = False
    replsrcport: tuple[int, int] | None = None
    replsrcport_inv: bool = False
    repldstport: tuple[int, int] | None = None
    repldstport_inv: bool = False
    status: int | None = None
    status_inv: bool = False
    expire: tuple[int, int] | None = None
    expire_inv: bool = False
    reply_dir: bool | None = None                # --ctdir: False ORIGINAL, True REPLY

    name = "conntrack"
    _ADDRS = ("origsrc", "origdst", "replsrc", "repldst")
    _PORTS = ("origsrcport", "origdstport", "replsrcport", "repldstport")
    OPTIONS = {"--ctstate": Opt("state", inv=True), "--ctproto": Opt("proto", inv=True),
               **{f"--ct{k}": Opt(k, inv=True) for k in _ADDRS + _PORTS},
               "--ctstatus": Opt("status", inv=True), "--ctexpire": Opt("expire", inv=True),
               "--ctdir": Opt("dir")}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "ConntrackMatch":
        if not any(k in opts for k in ("state", "proto", "status", "expire", "dir")
                   + cls._ADDRS + cls._PORTS):
            raise OptionError("conntrack: at least one option is required")
        fields = {}
        if "state" in opts:
            fields["state"] = _parse_flag_list(opts.get("state"), CTSTATES, "ctstate")
        if "proto" in opts:
            fields["proto"] = _parse_proto(opts.get("proto"))
        for key in cls._ADDRS:
            if key in opts:
                fields[key] = parse_prefix(opts.get(key))
        for key in cls._PORTS:
            if key in opts:
                fields[key] = parse_range(opts.get(key), 0, 65535, "port")
        if "status" in opts:
            fields["status"] = _parse_flag_list(opts.get("status"), CTSTATUS, "ctstatus")
        if "expire" in opts:
            # libxt_conntrack takes min:max without ordering them; min > max never matches.
            text = opts.get("expire")
            lo, _, hi = text.partition(":")
            fields["expire"] = (parse_uint(lo, 0, U32, "ctexpire"),
                                parse_uint(hi, 0, U32, "ctexpire") if hi else
                                parse_uint(lo, 0, U32, "ctexpire"))
        if "dir" in opts:
            word = opts.get("dir").upper()
            if word not in ("ORIGINAL", "REPLY"):
                raise OptionError(f'unknown ctdir "{opts.get("dir")}" (ORIGINAL or REPLY)')
            fields["reply_dir"] = word == "REPLY"
        for key in ("state", "proto", "status", "expire") + cls._ADDRS + cls._PORTS:
            if opts.inv(key):
                fields[key + "_inv"] = True
        return cls(**fields)

    def save(self) -> str:
        out = []
        if self.state is not None:
            out.append(f"{_inv(self.state_inv)}--ctstate "
                       f"{_flag_names(self.state, CTSTATES, '')}")
        if self.proto is not None:
            out.append(f"{_inv(self.proto_inv)}--ctproto {self.proto}")
        for key in self._ADDRS:
            value = getattr(self, key)
            if value is not None:
                addr, plen = value
                text = format_ipv4(addr) + ("" if plen == 32 else f"/{plen}")
                out.append(f"{_inv(getattr(self, key + '_inv'))}--ct{key} {text}")
        for key in self._PORTS:
            value = getattr(self, key)
            if value is not None:
                out.append(f"{_inv(getattr(self, key + '_inv'))}--ct{key} {format_range(*value)}")
        if self.status is not None:
            out.append(f"{_inv(self.status_inv)}--ctstatus "
                       f"{_flag_names(self.status, CTSTATUS, 'NONE')}")
        if self.expire is not None:
            lo, hi = self.expire
            out.append(f"{_inv(self.expire_inv)}--ctexpire {lo if lo == hi else f'{lo}:{hi}'}")
        if self.reply_dir is not None:
            out.append(f"--ctdir {'REPLY' if self.reply_dir else 'ORIGINAL'}")
        return " ".join(out)

    def __call__(self, ctx) -> bool:
        ct = ctx.conn
        if self.state is not None:
            bit = STATE_BIT[ctx.ctinfo]
            if ct is not None:
                if ct.status & IPS_SRC_NAT:
                    bit |= ST_SNAT
                if ct.status & IPS_DST_NAT:
                    bit |= ST_DNAT
            if (not self.state & bit) != self.state_inv:
                return False
        if ct is None:
            # kernel: "if (ct == NULL) return info->match_flags & XT_CONNTRACK_STATE".
            return self.state is not None
        return self._match_conn(ctx, ct)

    def compile(self, state):
        """The common `--ctstate X` alone: a closure that skips the per-connection checks."""
        if self.state is None or self != ConntrackMatch(self.state, self.state_inv):
            return self.__call__
        mask, inv, bits = self.state, self.state_inv, STATE_BIT

        def state_only(ctx) -> bool:
            bit = bits[ctx.ctinfo]
            ct = ctx.conn
            if ct is not None and ct.status & _NAT_BITS:
                bit |= (ST_SNAT if ct.status & IPS_SRC_NAT else 0) | \
                       (ST_DNAT if ct.status & IPS_DST_NAT else 0)
            return (mask & bit != 0) != inv

        return state_only

    def _match_conn(self, ctx, ct) -> bool:
        if self.reply_dir is not None and \
                (ctx.ctinfo >= CtInfo.ESTABLISHED_REPLY) != self.reply_dir:
            return False
        orig, reply = ct.orig, ct.reply
        for key, t, index in (("origsrc", orig, 0), ("origdst", orig, 1),
                              ("replsrc", reply, 0), ("repldst", reply, 1)):
            want = getattr(self, key)
            if want is not None:
                mask = prefix_mask(want[1])
                if ((_tuple_addr(t, index) & mask) == (want[0] & mask)) == \
                        getattr(self, key + "_inv"):
                    return False
        if self.proto is not None and (orig[2] == self.proto) == self.proto_inv:
            return False
        for key, port in (("origsrcport", orig[3]), ("origdstport", orig[4]),
                          ("replsrcport", reply[3]), ("repldstport", reply[4])):
            want = getattr(self, key)
            if want is not None and (want[0] <= port <= want[1]) == getattr(self, key + "_inv"):
                return False
        if self.status is not None and (not ct.status & self.status) != self.status_inv:
            return False
        if self.expire is not None:
            left = max(0, int(ct.deadline - ctx.now))
            if (self.expire[0] <= left <= self.expire[1]) == self.expire_inv:
                return False
        return True


def _parse_proto(text: str) -> int:
    if text.isdigit():
        return parse_uint(text, 0, 255, "protocol")
    proto = PROTO_NUMBERS.get(text.lower())
    if proto is None:
        raise OptionError(f'unknown protocol "{text}"')
    return proto


@dataclass(frozen=True, slots=True)
class StateMatch(Match):
    """-m state: kernel xt_state.c (in iptables 1.8 an alias of conntrack --ctstate)."""
    state: int
    inv: bool = False

    name = "state"
    OPTIONS = {"--state": Opt("state", inv=True)}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "StateMatch":
        opts.require("state", "state", "--state")
        return cls(_parse_flag_list(opts.get("state"), STATES, "state"), opts.inv("state"))

    def save(self) -> str:
        return f"{_inv(self.inv)}--state {_flag_names(self.state, STATES, '')}"

    def __call__(self, ctx) -> bool:
        return (not self.state & STATE_BIT[ctx.ctinfo]) == self.inv


# ---------------------------------------------------------------- ports, addresses, sizes

MULTIPORT_MAX = 15           # XT_MULTI_PORTS: a range takes two slots


@dataclass(frozen=True, slots=True)
class MultiportMatch(Match):
    """-m multiport, revision 1: kernel xt_multiport.c ports_match_v1()."""
    which: str                                   # "sports", "dports" or "ports"
    ports: tuple[tuple[int, int], ...]
    inv: bool = False

    name = "multiport"
    OPTIONS = {"--source-ports": Opt("sports", inv=True), "--sports": Opt("sports", inv=True),
               "--destination-ports": Opt("dports", inv=True),
               "--dports": Opt("dports", inv=True), "--ports": Opt("ports", inv=True)}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "MultiportMatch":
        proto = info.proto_is(IPPROTO_TCP, IPPROTO_UDP)
        if proto is None:
            raise OptionError("multiport needs -p tcp or -p udp")
        which = opts.exclusive("sports", "dports", "ports")
        if which is None:
            raise OptionError("multiport needs --sports, --dports or --ports")
        ports = tuple(parse_port_range(p, proto) for p in opts.get(which).split(","))
        if sum(1 if lo == hi else 2 for lo, hi in ports) > MULTIPORT_MAX:
            raise OptionError(f"multiport: too many ports (at most {MULTIPORT_MAX}, "
                              "a range counts as two)")
        return cls(which, ports, opts.inv(which))

    def save(self) -> str:
        return f"{_inv(self.inv)}--{self.which} " + ",".join(format_range(*p) for p in self.ports)

    def __call__(self, ctx) -> bool:
        if ctx.fragoff:
            return False
        if ctx.sport < 0:
            raise HotDrop
        s, d, which = ctx.sport, ctx.dport, self.which
        for lo, hi in self.ports:
            if (which != "dports" and lo <= s <= hi) or (which != "sports" and lo <= d <= hi):
                return not self.inv
        return self.inv


def _parse_iprange(text: str) -> tuple[int, int]:
    first, dash, last = text.partition("-")
    lo = parse_ipv4(first)
    return lo, parse_ipv4(last) if dash else lo


@dataclass(frozen=True, slots=True)
class IprangeMatch(Match):
    """-m iprange, revision 1: kernel xt_iprange.c (a range with lo > hi never matches)."""
    src: tuple[int, int] | None = None
    src_inv: bool = False
    dst: tuple[int, int] | None = None
    dst_inv: bool = False

    name = "iprange"
    OPTIONS = {"--src-range": Opt("src", inv=True), "--dst-range": Opt("dst", inv=True)}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "IprangeMatch":
        if "src" not in opts and "dst" not in opts:
            raise OptionError("iprange: --src-range or --dst-range is required")
        return cls(_parse_iprange(opts.get("src")) if "src" in opts else None, opts.inv("src"),
                   _parse_iprange(opts.get("dst")) if "dst" in opts else None, opts.inv("dst"))

    def save(self) -> str:
        out = []
        for opt, value, inv in (("src", self.src, self.src_inv), ("dst", self.dst, self.dst_inv)):
            if value is not None:
                out.append(f"{_inv(inv)}--{opt}-range "
                           f"{format_ipv4(value[0])}-{format_ipv4(value[1])}")
        return " ".join(out)

    def __call__(self, ctx) -> bool:
        if self.src is not None and (self.src[0] <= ctx.saddr <= self.src[1]) == self.src_inv:
            return False
        if self.dst is not None and (self.dst[0] <= ctx.daddr <= self.dst[1]) == self.dst_inv:
            return False
        return True


@dataclass(frozen=True, slots=True)
class MacMatch(Match):
    """-m mac: kernel xt_mac.c.  Only an Ethernet (TAP) frame can match, inverted or not."""
    mac: bytes
    inv: bool = False

    name = "mac"
    HOOKS = frozenset({Hook.PREROUTING, Hook.INPUT, Hook.FORWARD})
    OPTIONS = {"--mac-source": Opt("mac", inv=True)}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "MacMatch":
        opts.require("mac", "mac", "--mac-source")
        return cls(parse_mac(opts.get("mac")), opts.inv("mac"))

    def save(self) -> str:
        return f"{_inv(self.inv)}--mac-source {format_mac(self.mac)}"

    def __call__(self, ctx) -> bool:
        header = ctx.mac_header
        if len(header) < 14:
            return False
        return (header[6:12] == self.mac) != self.inv


@dataclass(frozen=True, slots=True)
class LengthMatch(Match):
    """-m length: kernel xt_length.c (the IP total length)."""
    lo: int
    hi: int
    inv: bool = False

    name = "length"
    OPTIONS = {"--length": Opt("length", inv=True)}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "LengthMatch":
        opts.require("length", "length", "--length")
        lo, hi = parse_range(opts.get("length"), 0, 65535, "length")
        return cls(lo, hi, opts.inv("length"))

    def save(self) -> str:
        return f"{_inv(self.inv)}--length {format_range(self.lo, self.hi)}"

    def __call__(self, ctx) -> bool:
        return (self.lo <= ctx.length <= self.hi) != self.inv


@dataclass(frozen=True, slots=True)
class TtlMatch(Match):
    """-m ttl: kernel xt_ttl.c modes eq, ne (! --ttl-eq), lt, gt."""
    mode: str
    ttl: int

    name = "ttl"
    OPTIONS = {"--ttl-eq": Opt("eq", inv=True), "--ttl-lt": Opt("lt"), "--ttl-gt": Opt("gt")}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "TtlMatch":
        key = opts.exclusive("eq", "lt", "gt")
        if key is None:
            raise OptionError("ttl: one of --ttl-eq, --ttl-lt, --ttl-gt is required")
        ttl = parse_uint(opts.get(key), 0, 255, "TTL")
        return cls("ne" if opts.inv(key) else key, ttl)

    def save(self) -> str:
        return "! --ttl-eq %d" % self.ttl if self.mode == "ne" else f"--ttl-{self.mode} {self.ttl}"

    def __call__(self, ctx) -> bool:
        ttl, mode = ctx.desc.ttl, self.mode
        if mode == "eq":
            return ttl == self.ttl
        if mode == "ne":
            return ttl != self.ttl
        return ttl < self.ttl if mode == "lt" else ttl > self.ttl


@dataclass(frozen=True, slots=True)
class CommentMatch(Match):
    """-m comment: always matches; the text is kept for iptables-save and -L."""
    comment: str

    name = "comment"
    OPTIONS = {"--comment": Opt("comment")}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "CommentMatch":
        opts.require("comment", "comment", "--comment")
        text = opts.get("comment")
        if len(text.encode()) > MAX_COMMENT:
            raise OptionError(f"comment is longer than {MAX_COMMENT} bytes")
        return cls(text)

    def save(self) -> str:
        return f"--comment {quote(self.comment)}"

    def __call__(self, ctx) -> bool:
        return True


# ---------------------------------------------------------------- payload, helper, addrtype

def parse_hex_string(text: str) -> bytes:
    """libxt_string parse_hex_string(): |hex pairs| blocks and literal characters.

    Inside |...| pairs of hex digits, spaces between pairs allowed; outside, each
    character is itself and a backslash takes the next one literally.
    """
    out = bytearray()
    i, n, hexmode = 0, len(text), False
    while i < n:
        ch = text[i]
        if ch == "|":
            hexmode = not hexmode
            i += 1
        elif hexmode:
            if ch == " ":
                i += 1
                continue
            pair = text[i:i + 2]
            if len(pair) < 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
                raise OptionError(f'invalid hex string "{text}"')
            out.append(int(pair, 16))
            i += 2
        elif ch == "\\":
            if i + 1 >= n:
                raise OptionError(f'bad literal placement at end of "{text}"')
            out += text[i + 1].encode()
            i += 2
        else:
            out += ch.encode()
            i += 1
    if hexmode:
        raise OptionError(f'unterminated hex block in "{text}"')
    return bytes(out)


def _printable(data: bytes) -> bool:
    return all(0x20 <= b < 0x7F for b in data)


@dataclass(frozen=True, slots=True)
class StringMatch(Match):
    """-m string: kernel xt_string.c, skb_find_text() over bytes [from, to) of the packet.

    Offsets count from the IP header, as the kernel's do at these hooks.  bm
    and kmp find the same occurrences (they differ only in speed), so both
    are a search for the pattern wholly inside the window; --icase folds
    ASCII letters as the kernel's toupper() does.
    """
    pattern: bytes
    algo: str
    start: int = 0
    stop: int = 65535
    icase: bool = False
    inv: bool = False

    name = "string"
    ALGOS = ("bm", "kmp")
    OPTIONS = {"--string": Opt("pattern", inv=True), "--hex-string": Opt("hex", inv=True),
               "--algo": Opt("algo"), "--from": Opt("from"), "--to": Opt("to"),
               "--icase": Opt("icase", nargs=0)}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "StringMatch":
        which = opts.exclusive("pattern", "hex")
        if which is None:
            raise OptionError("string: --string or --hex-string is required")
        opts.require("algo", "string", "--algo")
        algo = opts.get("algo")
        if algo not in cls.ALGOS:
            raise OptionError(f'unknown string algorithm "{algo}" (bm or kmp)')
        text = opts.get(which)
        pattern = text.encode() if which == "pattern" else parse_hex_string(text)
        if not pattern:
            raise OptionError("string: the pattern is empty")
        if len(pattern) > MAX_STRING_PATTERN:
            raise OptionError(f"string: pattern longer than {MAX_STRING_PATTERN} bytes")
        start = parse_uint(opts.get("from", "0"), 0, 65535, "--from offset")
        stop = parse_uint(opts.get("to", "65535"), 0, 65535, "--to offset")
        if start > stop:
            raise OptionError(f"string: --from {start} is beyond --to {stop}")
        return cls(pattern, algo, start, stop, "icase" in opts, opts.inv(which))

    def save(self) -> str:
        if _printable(self.pattern):
            text = self.pattern.decode().replace("\\", "\\\\").replace('"', '\\"')
            out = [f'{_inv(self.inv)}--string "{text}"']
        else:
            out = [f'{_inv(self.inv)}--hex-string "|{self.pattern.hex()}|"']
        out.append(f"--algo {self.algo}")
        if self.start:
            out.append(f"--from {self.start}")
        if self.stop != 65535:
            out.append(f"--to {self.stop}")
        if self.icase:
            out.append("--icase")
        return " ".join(out)

    def __call__(self, ctx) -> bool:
        window = bytes(ctx.desc.buf[self.start:self.stop])
        if self.icase:
            found = self.pattern.upper() in window.upper()
        else:
            found = self.pattern in window
        return found != self.inv


@dataclass(frozen=True, slots=True)
class HelperMatch(Match):
    """-m helper: kernel xt_helper.c.

    Matches a connection whose *master* has the helper (an expected
    connection, e.g. FTP data), comparing the first len(helper name)
    characters as the kernel's strncmp does; an empty name matches any helper.
    """
    helper: str
    inv: bool = False

    name = "helper"
    OPTIONS = {"--helper": Opt("helper", inv=True)}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "HelperMatch":
        opts.require("helper", "helper", "--helper")
        name = opts.get("helper")
        if len(name) > MAX_HELPER_NAME:
            raise OptionError(f"helper name longer than {MAX_HELPER_NAME} characters")
        return cls(name, opts.inv("helper"))

    def save(self) -> str:
        return f"{_inv(self.inv)}--helper {quote(self.helper)}"

    def __call__(self, ctx) -> bool:
        master = ctx.master_helper
        if master is None:
            return self.inv
        return (self.helper.startswith(master) or not self.helper) != self.inv


# -m addrtype names, in RTN_* order (the order libxt_addrtype prints them in).
ADDRTYPES = {"UNSPEC": RTN_UNSPEC, "UNICAST": RTN_UNICAST, "LOCAL": RTN_LOCAL,
             "BROADCAST": RTN_BROADCAST, "ANYCAST": RTN_ANYCAST, "MULTICAST": RTN_MULTICAST,
             "BLACKHOLE": RTN_BLACKHOLE, "UNREACHABLE": RTN_UNREACHABLE,
             "PROHIBIT": RTN_PROHIBIT, "THROW": RTN_THROW, "NAT": RTN_NAT,
             "XRESOLVE": RTN_XRESOLVE}
_ADDRTYPE_BITS = {name: 1 << rtn for name, rtn in ADDRTYPES.items()}
_IFACE_IN_HOOKS = frozenset({Hook.PREROUTING, Hook.INPUT, Hook.FORWARD})
_IFACE_OUT_HOOKS = frozenset({Hook.POSTROUTING, Hook.OUTPUT, Hook.FORWARD})


@dataclass(frozen=True, slots=True)
class AddrtypeMatch(Match):
    """-m addrtype, revision 1: kernel xt_addrtype.c addrtype_mt_v1(), types as bit masks."""
    src: int = 0
    src_inv: bool = False
    dst: int = 0
    dst_inv: bool = False
    iface: str | None = None                     # "in", "out" or None

    name = "addrtype"
    OPTIONS = {"--src-type": Opt("src", inv=True), "--dst-type": Opt("dst", inv=True),
               "--limit-iface-in": Opt("in", nargs=0), "--limit-iface-out": Opt("out", nargs=0)}

    @classmethod
    def parse(cls, opts: Opts, info: RuleInfo) -> "AddrtypeMatch":
        if "src" not in opts and "dst" not in opts:
            raise OptionError("addrtype: --src-type or --dst-type is required")
        return cls(
            src=_parse_flag_list(opts.get("src"), _ADDRTYPE_BITS, "address type")
            if "src" in opts else 0, src_inv=opts.inv("src"),
            dst=_parse_flag_list(opts.get("dst"), _ADDRTYPE_BITS, "address type")
            if "dst" in opts else 0, dst_inv=opts.inv("dst"),
            iface=opts.exclusive("in", "out"))

    def hooks(self) -> frozenset:
        if self.iface == "in":
            return _IFACE_IN_HOOKS
        if self.iface == "out":
            return _IFACE_OUT_HOOKS
        return self.HOOKS

    def save(self) -> str:
        out = []
        if self.src:
            out.append(f"{_inv(self.src_inv)}--src-type "
                       f"{_flag_names(self.src, _ADDRTYPE_BITS, '')}")
        if self.dst:
            out.append(f"{_inv(self.dst_inv)}--dst-type "
                       f"{_flag_names(self.dst, _ADDRTYPE_BITS, '')}")
        if self.iface is not None:
            out.append(f"--limit-iface-{self.iface}")
        return " ".join(out)

    def __call__(self, ctx) -> bool:
        dev = None
        if self.iface == "in":
            dev = ctx.in_name
        elif self.iface == "out":
            dev = ctx.out_name
        types = ctx.addrtypes
        if self.src and (not (1 << types.type_of(ctx.saddr, dev)) & self.src) != self.src_inv:
            return False
        if self.dst and (not (1 << types.type_of(ctx.daddr, dev)) & self.dst) != self.dst_inv:
            return False
        return True


# The -m table: every match tunrouter has, by the name rules use.
MATCHES: dict[str, type[Match]] = {
    "tcp": TcpMatch, "udp": UdpMatch, "icmp": IcmpMatch,
    "conntrack": ConntrackMatch, "state": StateMatch,
    "multiport": MultiportMatch, "iprange": IprangeMatch, "mac": MacMatch,
    "length": LengthMatch, "ttl": TtlMatch, "comment": CommentMatch,
    "limit": LimitMatch, "hashlimit": HashlimitMatch, "connlimit": ConnlimitMatch,
    "recent": RecentMatch, "string": StringMatch, "helper": HelperMatch,
    "addrtype": AddrtypeMatch,
}

# -p NAME loads the match of the same name for its options (iptables' "implicit" match).
PROTO_MATCHES: dict[int, type[Match]] = {m.PROTO: m for m in MATCHES.values() if m.PROTO}
