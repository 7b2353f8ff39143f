"""Builders for rule-engine tests: Scapy packet -> PacketDesc -> Ctx, and ruleset text -> Engine."""
from packets import frame

from tunrouter.conntrack.conn import Conn, CtInfo
from tunrouter.core.desc import parse as parse_desc
from tunrouter.rules import Ctx, Engine, Hook, parse
from tunrouter.rules.engine import TABLE_NAMES

LAN_MAC = bytes.fromhex("020000000001")
H1_MAC = bytes.fromhex("020000000022")
ETH_HEADER = LAN_MAC + H1_MAC + b"\x08\x00"


def ip(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def ctx(pkt, ctinfo=CtInfo.NEW, conn=None, in_name="lan0", out_name="", now=0.0, **kw) -> Ctx:
    desc = parse_desc(frame(pkt), 0)
    assert not isinstance(desc, int), desc
    return Ctx(desc, ctinfo, conn, in_name, out_name, now, **kw)


def conn(src="10.1.0.2", dst="10.2.0.2", proto=6, sport=40000, dport=80, status=0,
         deadline=0.0, reply=None) -> Conn:
    c = Conn((ip(src), ip(dst), proto, sport, dport),
             reply or (ip(dst), ip(src), proto, dport, sport))
    c.status = status
    c.deadline = deadline
    return c


def engine(rules: str, table: str = "filter", previous=None) -> Engine:
    """An Engine over rules given as the body of one table block."""
    return Engine(parse(f"*{table}\n{rules}\nCOMMIT\n"), previous)


def matches(rule: str, pkt, chain: str = "INPUT", table: str = "filter", **kw) -> bool:
    """Whether a single rule (without a target) matches pkt: its counter says so."""
    e = engine(f"-A {chain} {rule}", table)
    hook = Hook[chain]
    e.run(TABLE_NAMES.index(table), hook, ctx(pkt, **kw))
    return e.counters(table, chain, 0)[0] == 1
