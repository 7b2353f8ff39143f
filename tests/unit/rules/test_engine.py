"""Chain traversal as ipt_do_table() does it: jumps, gotos, RETURN, policies, counters, targets."""
from rules_ctx import conn, ctx, engine
from scapy.all import IP, TCP, UDP

from tunrouter.conntrack.conn import CtInfo
from tunrouter.rules import (
    ACCEPT,
    DROP,
    FILTER,
    NAT,
    RAW,
    Dnat,
    Engine,
    Hook,
    Masquerade,
    Reject,
    Snat,
    parse,
)

PKT = IP(src="10.1.0.2", dst="10.2.0.2") / TCP(sport=40000, dport=80, flags="S")   # 40 bytes


def run(e, chain="INPUT", table=FILTER, pkt=PKT, **kw):
    return e.run(table, Hook[chain], ctx(pkt, **kw))


def test_policy_applies_at_the_end_and_counts():
    e = engine(":INPUT DROP [0:0]\n-A INPUT -p udp -j ACCEPT")
    assert run(e) is DROP
    assert e.counters("filter", "INPUT", None) == (1, 40)
    assert e.counters("filter", "INPUT", 0) == (0, 0)


def test_jump_returns_to_the_next_rule():
    e = engine(":sub - [0:0]\n-A INPUT -j sub\n-A INPUT -j DROP\n-A sub -p udp -j ACCEPT")
    assert run(e) is DROP
    assert [e.counters("filter", "INPUT", i) for i in (0, 1)] == [(1, 40), (1, 40)]


def test_return_in_a_user_chain_and_in_a_builtin_chain():
    e = engine(":sub - [0:0]\n-P INPUT DROP\n-A INPUT -j sub\n-A INPUT -j ACCEPT\n"
               "-A sub -j RETURN\n-A sub -j DROP")
    assert run(e) is ACCEPT
    e = engine("-P INPUT DROP\n-A INPUT -j RETURN\n-A INPUT -j ACCEPT")
    assert run(e) is DROP                                  # RETURN at the top: the policy
    assert e.counters("filter", "INPUT", None) == (1, 40)


def test_goto_does_not_come_back():
    """-g: falling off the goto'd chain returns to whoever jumped to the goto's chain."""
    e = engine(":a - [0:0]\n:b - [0:0]\n-P INPUT DROP\n-A INPUT -j a\n-A INPUT -j ACCEPT\n"
               "-A a -g b\n-A a -j DROP\n-A b -p udp -j DROP")
    assert run(e) is ACCEPT                                # b falls off: back to INPUT, not a
    assert e.counters("filter", "a", 1) == (0, 0)
    e = engine(":b - [0:0]\n-P INPUT DROP\n-A INPUT -g b\n-A INPUT -j ACCEPT")
    assert run(e) is DROP                                  # goto from the top: the policy


def test_nested_jumps_and_a_bare_rule_that_only_counts():
    e = engine(":a - [0:0]\n:b - [0:0]\n:c - [0:0]\n-A INPUT -j a\n-A a -j b\n-A b -j c\n"
               "-A c -p tcp\n-A b -j ACCEPT")
    assert run(e) is ACCEPT
    assert e.counters("filter", "c", 0) == (1, 40)
    assert e.counters("filter", "b", 1) == (1, 40)


def test_log_continues_and_reject_decides():
    e = engine("-A INPUT -j LOG --log-prefix \"in: \"\n"
               "-A INPUT -p tcp -j REJECT --reject-with tcp-reset\n-A INPUT -j ACCEPT")
    v = run(e)
    assert isinstance(v, Reject) and v.icmp is None and v.reject_with == "tcp-reset"
    assert [r.prefix for r in e.logs] == ["in: "]
    v = run(engine("-A FORWARD -j REJECT"), "FORWARD")
    assert v.icmp == (3, 3)


def test_nflog_copies_at_most_size_bytes():
    e = engine("-A INPUT -j NFLOG --nflog-group 2 --nflog-size 20 --nflog-prefix cap")
    assert run(e) is ACCEPT
    (rec,) = e.nflogs
    assert (rec.group, rec.prefix, len(rec.data), rec.length) == (2, "cap", 20, 40)


def test_nat_targets_are_the_verdict():
    e = Engine(parse("*nat\n"
                     "-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.1.0.9:8080\n"
                     "-A POSTROUTING -o wan0 -j MASQUERADE\n"
                     "-A POSTROUTING -o wan1 -j SNAT --to-source 192.0.2.1-192.0.2.4\nCOMMIT\n"))
    v = run(e, "PREROUTING", NAT)
    assert isinstance(v, Dnat) and v.addrs == (0x0A010009,) * 2 and v.ports == (8080, 8080)
    assert isinstance(run(e, "POSTROUTING", NAT, out_name="wan0"), Masquerade)
    v = run(e, "POSTROUTING", NAT, out_name="wan1")
    assert isinstance(v, Snat) and v.addrs == (0xC0000201, 0xC0000204)
    assert run(e, "POSTROUTING", NAT, out_name="lan0") is ACCEPT
    assert run(e, "INPUT", NAT) is ACCEPT


def test_notrack_and_ct_helper_mark_the_context():
    e = Engine(parse("*raw\n-A PREROUTING -p udp --dport 53 -j CT --notrack\n"
                     "-A PREROUTING -p tcp --dport 21 -j CT --helper ftp\n"
                     "-A OUTPUT -j NOTRACK\nCOMMIT\n"))
    c = ctx(IP(src="10.1.0.2", dst="10.2.0.2") / UDP(dport=53))
    assert e.run(RAW, Hook.PREROUTING, c) is ACCEPT and c.notrack
    c = ctx(IP(src="10.1.0.2", dst="10.2.0.2") / TCP(dport=21))
    assert e.run(RAW, Hook.PREROUTING, c) is ACCEPT and c.ct_helper == "ftp" and not c.notrack
    c = ctx(PKT, in_name="")
    assert e.run(RAW, Hook.OUTPUT, c) is ACCEPT and c.notrack


def test_a_table_without_rules_accepts():
    e = engine("-A INPUT -j DROP")
    assert e.run(NAT, Hook.PREROUTING, ctx(PKT)) is ACCEPT
    assert e.run(RAW, Hook.OUTPUT, ctx(PKT)) is ACCEPT


def test_zero_counters():
    e = engine("-A INPUT -j ACCEPT\n-A FORWARD -j ACCEPT")
    run(e)
    run(e, "FORWARD")
    e.zero(chain="INPUT")
    assert e.counters("filter", "INPUT", 0) == (0, 0)
    assert e.counters("filter", "FORWARD", 0) == (1, 40)
    e.zero()
    assert e.counters("filter", "FORWARD", 0) == (0, 0)


def test_the_usual_first_rule_lets_established_traffic_through():
    e = engine("-P FORWARD DROP\n-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n"
               + "".join(f"-A FORWARD -p tcp --dport {1000 + i} -j ACCEPT\n" for i in range(999)))
    c = conn()
    assert run(e, "FORWARD", ctinfo=CtInfo.ESTABLISHED_REPLY, conn=c) is ACCEPT
    assert run(e, "FORWARD", ctinfo=CtInfo.NEW, conn=c) is DROP
    assert e.counters("filter", "FORWARD", 0) == (1, 40)


def test_save_prints_live_counters():
    e = engine(":INPUT DROP [0:0]\n-A INPUT -p tcp -j ACCEPT")
    run(e)
    run(e)
    assert "[2:80] -A INPUT -p tcp -j ACCEPT" in e.save(counters=True).splitlines()
    assert ":INPUT DROP [0:0]" in e.save().splitlines()
    assert "-A INPUT -p tcp -j ACCEPT" in e.save().splitlines()
