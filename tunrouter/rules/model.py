"""The ruleset as data: tables of chains of rules (frozen dataclasses).

Mirrors what iptables-restore builds: a table has the kernel's built-in
chains (with a policy and policy counters) and user chains (policy None); a
rule is `-A CHAIN` plus the IPv4 header filter (struct ipt_ip), its matches
and one target.  Nothing here changes after parsing: live packet and byte
counters belong to the compiled engine, so a reload can carry or reset them
as iptables does.  The counters stored here are the ones the text asked to
restore (`:INPUT ACCEPT [p:b]`, `[p:b] -A ...`, `-c p b`).
"""
import enum
from dataclasses import dataclass, field

from tunrouter.rules.values import format_ipv4


class Hook(enum.IntEnum):
    """netfilter's hooks, numbered as enum nf_inet_hooks."""
    PREROUTING = 0
    INPUT = 1
    FORWARD = 2
    OUTPUT = 3
    POSTROUTING = 4


# The tables tunrouter has, their built-in chains in the kernel's order (the
# order iptables-save prints them), and the order iptables-nft-save prints the
# tables in (its table array: raw, filter, nat).  No mangle: tunrouter has
# neither MARK nor CONNMARK, so a mangle table could hold nothing useful.
TABLES: dict[str, tuple[Hook, ...]] = {
    "raw": (Hook.PREROUTING, Hook.OUTPUT),
    "filter": (Hook.INPUT, Hook.FORWARD, Hook.OUTPUT),
    "nat": (Hook.PREROUTING, Hook.INPUT, Hook.OUTPUT, Hook.POSTROUTING),
}
POLICIES = ("ACCEPT", "DROP")

# Protocol names, as iptables resolves `-p NAME` (getprotobyname() over
# Debian 12's netbase 6.4 /etc/protocols, primary names, plus libxtables'
# own "all") and prints `-p N` (getprotobynumber(): the first name wins).
_PROTOCOLS = (
    "ip 0;hopopt 0;icmp 1;igmp 2;ggp 3;ipencap 4;st 5;tcp 6;egp 8;igp 9;pup 12;udp 17;"
    "hmp 20;xns-idp 22;rdp 27;iso-tp4 29;dccp 33;xtp 36;ddp 37;idpr-cmtp 38;ipv6 41;"
    "ipv6-route 43;ipv6-frag 44;idrp 45;rsvp 46;gre 47;esp 50;ah 51;skip 57;ipv6-icmp 58;"
    "ipv6-nonxt 59;ipv6-opts 60;rspf 73;vmtp 81;eigrp 88;ospf 89;ax.25 93;ipip 94;"
    "etherip 97;encap 98;pim 103;ipcomp 108;vrrp 112;l2tp 115;isis 124;sctp 132;fc 133;"
    "mobility-header 135;udplite 136;mpls-in-ip 137;manet 138;hip 139;shim6 140;wesp 141;"
    "rohc 142;ethernet 143"
)
PROTO_NUMBERS: dict[str, int] = {"all": 0}
PROTO_NAMES: dict[int, str] = {}
for _entry in _PROTOCOLS.split(";"):
    _name, _num = _entry.split()
    PROTO_NUMBERS[_name] = int(_num)
    PROTO_NAMES.setdefault(int(_num), _name)
del _entry, _name, _num

IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 1, 6, 17


def proto_name(proto: int) -> str:
    return PROTO_NAMES.get(proto, str(proto))


@dataclass(frozen=True, slots=True)
class IpFilter:
    """`-s -d -i -o -p -f`, each with its `!` (kernel: struct ipt_ip, ip_packet_match()).

    Addresses are already masked (iptables stores -s 10.1.2.3/8 as 10.0.0.0/8).
    An interface ending in "+" matches every name with that prefix; "" is any.
    frag: None without -f, True for -f (second and later fragments), False for ! -f.
    """
    src: int = 0
    src_len: int = 0
    src_inv: bool = False
    dst: int = 0
    dst_len: int = 0
    dst_inv: bool = False
    iniface: str = ""
    iniface_inv: bool = False
    outiface: str = ""
    outiface_inv: bool = False
    proto: int = 0
    proto_inv: bool = False
    frag: bool | None = None

    def save(self) -> str:
        """`-s .. -d .. -i .. -o .. -p .. -f` in iptables-save's order and spelling."""
        out = []
        if self.src_len or self.src_inv:
            out.append(f"{'! ' if self.src_inv else ''}-s {format_ipv4(self.src)}/{self.src_len}")
        if self.dst_len or self.dst_inv:
            out.append(f"{'! ' if self.dst_inv else ''}-d {format_ipv4(self.dst)}/{self.dst_len}")
        if self.iniface:
            out.append(f"{'! ' if self.iniface_inv else ''}-i {self.iniface}")
        if self.outiface:
            out.append(f"{'! ' if self.outiface_inv else ''}-o {self.outiface}")
        if self.proto:
            out.append(f"{'! ' if self.proto_inv else ''}-p {proto_name(self.proto)}")
        if self.frag is not None:
            out.append("-f" if self.frag else "! -f")
        return " ".join(out)


@dataclass(frozen=True, slots=True)
class Rule:
    """One `-A CHAIN ...` line (a line with `-s a,b` becomes one Rule per address).

    set_counters: the [packets, bytes] the text gave (`[p:b]` prefix or `-c p b`),
    applied when restoring with counters; not part of the rule's identity.
    """
    lineno: int
    ipf: IpFilter
    matches: tuple = ()
    target: object = None
    set_counters: tuple[int, int] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Chain:
    """A built-in chain (policy "ACCEPT"/"DROP") or a user chain (policy None).

    counters: the policy's [packets, bytes] the text set (restore -c), (0, 0)
    when a restore resets them, None when they carry over (--noflush).
    """
    name: str
    policy: str | None
    rules: tuple[Rule, ...] = ()
    counters: tuple[int, int] | None = None

    @property
    def builtin(self) -> bool:
        return self.policy is not None


@dataclass(frozen=True, slots=True)
class Table:
    """A table as iptables-restore leaves it: built-in chains first, in kernel order."""
    name: str
    chains: tuple[Chain, ...]

    def chain(self, name: str) -> Chain | None:
        for c in self.chains:
            if c.name == name:
                return c
        return None


@dataclass(frozen=True, slots=True)
class Ruleset:
    """Every table the text declared with content, in iptables-nft-save's table order."""
    tables: tuple[Table, ...] = ()

    def table(self, name: str) -> Table | None:
        for t in self.tables:
            if t.name == name:
                return t
        return None
