"""Traces: the rules a packet matched, its conntrack state, its fate; filters in two spellings."""
import pytest
from packets import H1, LAN_TUN, SRV, WAN, make_router, tcp4, udp4

from tunrouter.core.desc import parse
from tunrouter.core.hooks import engine_for
from tunrouter.core.trace import FilterError, Tracer, compile_filter
from tunrouter.rules import DROP
from tunrouter.rules.model import Hook

RULES = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i lan0 -p udp -j ACCEPT
COMMIT
"""
NAMES = ["lan0", "lan1", "wan0"]


def traced(filter_text):
    r = make_router()
    r.set_rules(engine_for(RULES))
    tracer = Tracer(compile_filter(filter_text, NAMES))
    r.set_tracer(tracer)
    return r, tracer


def rule_events(trace):
    return [(e[0], e[1], e[2], e[3]) for e in trace.events if e[0] != "conntrack"]


def test_trace_names_the_policy_that_dropped_a_packet_and_the_rules_that_passed_one():
    r, tracer = traced("udp or tcp")
    r.process(LAN_TUN, udp4(H1, SRV, 5000, 53), 0.0)
    r.process(WAN, tcp4(SRV, H1, 80, 4444), 0.1)                  # inbound: nothing allows it
    allowed, refused = tracer.done
    assert ("conntrack", "NEW") in allowed.events
    assert rule_events(allowed) == [("nat", Hook.PREROUTING, "PREROUTING", 0),
                                    ("filter", Hook.FORWARD, "FORWARD", 2),
                                    ("nat", Hook.POSTROUTING, "POSTROUTING", 1)]
    assert allowed.outcome == ["forwarded"]
    assert allowed.out[0][1][12:16] == bytes([203, 0, 113, 1])      # left masqueraded
    assert rule_events(refused)[-1] == ("filter", Hook.FORWARD, "FORWARD", 0)   # the policy
    assert refused.events[-1][4] is DROP
    assert refused.outcome == ["rule"] and refused.out == []


def test_an_established_packet_shows_the_first_rule_even_with_its_shortcut():
    r, tracer = traced("")
    r.process(LAN_TUN, udp4(H1, SRV, 5000, 53), 0.0)
    r.process(WAN, udp4(SRV, "203.0.113.1", 53, 5000), 0.1)
    reply = tracer.done[1]
    assert ("conntrack", "ESTABLISHED") in reply.events
    assert ("filter", Hook.FORWARD, "FORWARD", 1) in rule_events(reply)
    assert reply.outcome == ["forwarded"]
    assert r._fwd_est is not None                    # the shortcut is back after the trace


def test_untraced_packets_leave_no_trace_and_stopping_restores_process():
    r, tracer = traced("tcp")
    r.process(LAN_TUN, udp4(H1, SRV, 5000, 53), 0.0)
    assert tracer.done == []
    r.set_tracer(None)
    assert "process" not in r.__dict__


@pytest.mark.parametrize("text,hit", [
    ("udp", True), ("tcp", False), ("host 10.1.0.2", True), ("src host 203.0.113.80", False),
    ("dst net 203.0.113.0/24 and udp dst port 53", True), ("not port 53", False),
    ("( tcp or udp ) and src 10.1.0.2", True), ("portrange 50-60", True), ("ip proto 17", True),
    ("-p udp --dport 53", True), ("-i lan1", False), ("-s 10.1.0.0/24 -p udp", True),
])
def test_filters(text, hit):
    d = parse(udp4(H1, SRV, 5000, 53), LAN_TUN)
    assert compile_filter(text, NAMES)(d, LAN_TUN) is hit


@pytest.mark.parametrize("text", ["hots 1.2.3.4", "port", "port 70000", "( udp", "-p tcp --dprt 80",
                                  "host 1.2.3"])
def test_bad_filters_say_why(text):
    with pytest.raises(FilterError):
        compile_filter(text, NAMES)
