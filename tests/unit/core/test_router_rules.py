"""The router's netfilter hooks, on crafted packets: where each table runs and what verdicts do."""
import pytest
from packets import (
    H1,
    H2,
    LAN_TAP,
    LAN_TUN,
    R_LAN,
    R_WAN,
    SRV,
    WAN,
    eth_to_router,
    icmp_echo,
    make_router,
    parse_out,
    tcp4,
    udp4,
)
from scapy.all import ICMP, IP, TCP, UDP, UDPerror

from tunrouter.core.hooks import engine_for
from tunrouter.core.verdict import Drop
from tunrouter.rules import RuleSyntaxError

HEAD = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
STATEFUL = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i lan0 -j ACCEPT
COMMIT
"""


def router(text):
    r = make_router()
    r.set_rules(engine_for(text))
    return r


def filt(*rules, policy="ACCEPT"):
    return HEAD.replace(":FORWARD ACCEPT", f":FORWARD {policy}") + "".join(
        r + "\n" for r in rules) + "COMMIT\n"


def test_forward_drop_policy_with_established_rule_passes_replies_and_drops_new_inbound():
    r = router(STATEFUL)
    assert r.process(LAN_TUN, udp4(H1, SRV, 5000, 53), 0.0)
    reply = r.process(WAN, udp4(SRV, H1, 53, 5000), 0.1)
    assert parse_out(reply[0][1])[UDP].dport == 5000
    assert r.process(WAN, udp4(SRV, H1, 53, 5001), 0.2) == []
    assert r.counters.drops[Drop.RULE] == 1
    assert r.rules.counters("filter", "FORWARD", None) == (1, 29)
    assert r.rules.counters("filter", "FORWARD", 0)[0] == 1
    # The dropped NEW packet left no entry behind (never confirmed).
    assert r.conntrack.count() == 1


def test_empty_ruleset_and_no_ruleset_forward():
    for r in (make_router(), router("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n")):
        assert r.process(LAN_TUN, udp4(H1, SRV, 5000, 53), 0.0)


def test_input_rules_apply_to_pings_to_the_router():
    r = router(filt("-A INPUT -p icmp --icmp-type echo-request -s 10.1.0.0/24 -j DROP"))
    assert r.process(LAN_TUN, icmp_echo(H1, R_LAN), 0.0) == []
    assert r.counters.drops[Drop.RULE] == 1
    out = r.process(WAN, icmp_echo(SRV, R_WAN), 0.0)
    assert parse_out(out[0][1])[ICMP].type == 0
    # The forward path does not see INPUT's rules.
    assert r.process(LAN_TUN, icmp_echo(H1, SRV), 0.0)


def test_output_rules_see_router_made_packets():
    r = router(filt("-A OUTPUT -p icmp --icmp-type echo-reply -o wan0 -j DROP"))
    assert r.process(WAN, icmp_echo(SRV, R_WAN), 0.0) == []
    assert r.process(LAN_TUN, icmp_echo(H1, R_LAN), 0.0)
    assert r.rules.counters("filter", "OUTPUT", 0) == (1, 32)


def test_notrack_makes_packets_untracked():
    text = ("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            "-A PREROUTING -p udp --dport 53 -j NOTRACK\n"
            "-A PREROUTING -p udp --dport 54 -j CT --notrack\nCOMMIT\n"
            + filt("-A FORWARD -m conntrack --ctstate UNTRACKED -j ACCEPT",
                   "-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT", policy="DROP"))
    r = router(text)
    for port in (53, 54):
        assert r.process(LAN_TUN, udp4(H1, SRV, 5000, port), 0.0)
    assert r.conntrack.count() == 0
    assert r.rules.counters("filter", "FORWARD", 0)[0] == 2
    assert r.process(LAN_TUN, udp4(H1, SRV, 5000, 55), 0.0) == []


def test_raw_prerouting_sees_no_conntrack_state_yet():
    r = router("*raw\n:PREROUTING ACCEPT [0:0]\n"
               "-A PREROUTING -m conntrack --ctstate INVALID -j DROP\nCOMMIT\n")
    assert r.process(LAN_TUN, udp4(H1, SRV, 5000, 53), 0.0) == []


def test_reject_port_unreachable_builds_the_icmp_error():
    r = router(filt("-A FORWARD -p udp --dport 9 -j REJECT"))
    out = r.process(LAN_TUN, udp4(H1, SRV, 5000, 9), 0.0)
    p = parse_out(out[0][1])
    assert (p.src, p.dst, p[ICMP].type, p[ICMP].code) == (R_LAN, H1, 3, 3)
    assert p[UDPerror].dport == 9          # quotes the refused datagram
    assert r.counters.drops[Drop.REJECT] == 1


def test_reject_icmp_is_rate_limited_like_icmp_send():
    r = router(filt("-A FORWARD -p udp --dport 9 -j REJECT --reject-with icmp-host-prohibited"))
    sent = sum(bool(r.process(LAN_TUN, udp4(H1, SRV, 5000 + i, 9), 0.0)) for i in range(20))
    assert 0 < sent < 20
    assert r.counters.icmp_ratelimited == 20 - sent


def test_reject_tcp_reset_from_the_original_destination():
    r = router(filt("-A FORWARD -p tcp --dport 81 -j REJECT --reject-with tcp-reset"))
    out = r.process(LAN_TUN, tcp4(H1, SRV, 40000, 81, flags="S", seq=1000), 0.0)
    p = parse_out(out[0][1])
    assert (p.src, p.dst) == (SRV, H1)
    assert (p[TCP].sport, p[TCP].dport) == (81, 40000)
    assert (str(p[TCP].flags), p[TCP].seq, p[TCP].ack) == ("RA", 0, 1001)
    assert p.flags == "DF"
    # With ACK set: seq = the segment's ack, no ACK flag.
    out = r.process(LAN_TUN, tcp4(H1, SRV, 40001, 81, flags="A", seq=5, ack=777), 0.0)
    p = parse_out(out[0][1])
    assert (str(p[TCP].flags), p[TCP].seq) == ("R", 777)
    # Never a reset for a reset.
    assert r.process(LAN_TUN, tcp4(H1, SRV, 40002, 81, flags="R"), 0.0) == []


def test_log_writes_the_kernel_line_with_prefix_and_forward_sees_decremented_ttl():
    r = router(filt('-A FORWARD -m ttl --ttl-eq 63 -j LOG --log-prefix "fw: "'))
    r.process(LAN_TAP, eth_to_router(IP(src=H2, dst=SRV, ttl=64, id=7) / UDP(sport=1, dport=2)),
              0.0)
    (rec,) = r.rules.logs
    assert rec.text().startswith("fw: IN=lan1 OUT=wan0 MAC=02:00:00:00:00:01:02:00:00:00:00:22:08:00 "
                                 f"SRC={H2} DST={SRV} LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=7 ")
    assert rec.text().endswith("PROTO=UDP SPT=1 DPT=2 LEN=8 ")


def test_nat_chains_see_only_the_first_packet():
    r = router("*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
               "-A PREROUTING -j LOG --log-prefix pre\n-A POSTROUTING -j LOG --log-prefix post\n"
               "COMMIT\n")
    for _ in range(3):
        r.process(LAN_TUN, udp4(H1, SRV, 5000, 53), 0.0)
    assert [x.prefix for x in r.rules.logs] == ["pre", "post"]


def test_reload_keeps_conntrack_entries_and_rule_counters_carry_with_noflush():
    r = router(STATEFUL)
    r.process(LAN_TUN, udp4(H1, SRV, 5000, 53), 0.0)
    old = r.rules
    r.set_rules(engine_for(filt("-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT",
                                policy="DROP"), old))
    assert r.conntrack.count() == 1
    assert r.process(WAN, udp4(SRV, H1, 53, 5000), 0.1)
    assert r.rules.counters("filter", "FORWARD", 0)[0] == 1


def test_unknown_ct_helper_is_refused_with_the_line():
    cases = [("*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --dport 21 -j CT --helper sip\n"
              "COMMIT\n", 'line 3: CT: unknown helper "sip"')]
    for text, message in cases:
        with pytest.raises(RuleSyntaxError) as e:
            engine_for(text)
        assert str(e.value).startswith(message)


def test_hotdrop_and_user_chains_with_limit():
    r = router(filt("-N syn-flood", "-A syn-flood -m limit --limit 10/s --limit-burst 5 -j RETURN",
                    "-A syn-flood -j DROP", "-A FORWARD -p tcp --syn -j syn-flood").replace(
        "-N syn-flood\n", "").replace(":OUTPUT ACCEPT [0:0]\n", ":OUTPUT ACCEPT [0:0]\n:syn-flood - [0:0]\n"))
    passed = sum(bool(r.process(LAN_TUN, tcp4(H1, SRV, 1000 + i, 80), 0.0)) for i in range(20))
    assert passed == 5
    # 10/s refills for a second, but the bucket holds at most the burst.
    passed = sum(bool(r.process(LAN_TUN, tcp4(H1, SRV, 2000 + i, 80), 1.0)) for i in range(20))
    assert passed == 5
    passed = sum(bool(r.process(LAN_TUN, tcp4(H1, SRV, 3000 + i, 80), 1.2)) for i in range(20))
    assert passed == 2


def test_no_ctx_is_built_without_rules_for_the_hook(monkeypatch):
    r = router("*raw\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT DROP [0:0]\nCOMMIT\n")
    import tunrouter.core.router as mod
    calls = []
    monkeypatch.setattr(mod, "Ctx", lambda *a, **k: calls.append(a) or pytest.fail("Ctx built"))
    assert r.process(LAN_TUN, udp4(H1, SRV, 5000, 53), 0.0)
    assert calls == []
    # ...and the empty chains' policies still count.
    assert r.rules.counters("filter", "FORWARD", None) == (1, 29)
    assert r.rules.counters("raw", "PREROUTING", None) == (1, 29)


@pytest.mark.parametrize("first,shortcut", [
    ("-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT", True),
    ("-m state --state ESTABLISHED -j ACCEPT", True),
    ("-m conntrack --ctstate RELATED -j ACCEPT", False),
    ("-m conntrack ! --ctstate NEW -j ACCEPT", False),
    ("-i lan0 -m conntrack --ctstate ESTABLISHED -j ACCEPT", False),
    ("-m conntrack --ctstate ESTABLISHED --ctproto udp -j ACCEPT", False),
    ("-m conntrack --ctstate ESTABLISHED -j LOG", False),
])
def test_established_first_rule_is_counted_without_a_traversal(first, shortcut):
    """The usual first rule takes a shortcut for ESTABLISHED packets; verdicts and counters
    are those of a full traversal."""
    text = filt(f"-A FORWARD {first}", "-A FORWARD -i lan0 -j ACCEPT", policy="DROP")
    fast, plain = router(text), router(text)
    assert (fast._fwd_est is not None) == shortcut
    plain._fwd_est = None
    for r in (fast, plain):
        assert r.process(LAN_TUN, udp4(H1, SRV, 5000, 53), 0.0)
    for i in range(3):
        outs = [r.process(WAN, udp4(SRV, H1, 53, 5000), 0.1 + i / 10) for r in (fast, plain)]
        assert [bytes(f) for _, f in outs[0]] == [bytes(f) for _, f in outs[1]]
    assert fast.rules.save(counters=True) == plain.rules.save(counters=True)
