"""Rulesets for the tests: good ones (corpus/*.rules) and broken ones with the error each gets.

Each broken ruleset names the line tunrouter must report and a part of the
message.  iptables_refuses says whether the real iptables-restore refuses it
too (the compatibility test checks that); where it does not, tunrouter is
stricter on purpose.
"""
from dataclasses import dataclass
from pathlib import Path

GOOD = sorted((Path(__file__).resolve().parent / "corpus").glob("*.rules"))

_HEAD = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"


@dataclass(frozen=True)
class Broken:
    name: str
    text: str
    line: int
    message: str
    iptables_refuses: bool = True


def _filter(*rules: str) -> str:
    """A filter table whose rules start at line 5."""
    return _HEAD + "".join(r + "\n" for r in rules) + "COMMIT\n"


BROKEN = [
    Broken("unknown-match", _filter("-A INPUT -m tpc --dport 22 -j ACCEPT"), 5,
           'unknown match "tpc" (did you mean "tcp"?)'),
    Broken("unknown-option", _filter("-A INPUT -p tcp --dprot 22 -j ACCEPT"), 5,
           'unknown option "--dprot" (did you mean "--dport"?)'),
    Broken("unknown-target", _filter("-A INPUT -j ACCPET"), 5,
           'unknown target or chain "ACCPET" (did you mean "ACCEPT"?)'),
    Broken("unknown-table", "*filtre\nCOMMIT\n", 1,
           'unknown table "filtre" (did you mean "filter"?)'),
    Broken("mangle-table", "*mangle\nCOMMIT\n", 1, 'table "mangle" is not supported', False),
    Broken("missing-commit", _HEAD + "-A INPUT -j ACCEPT\n", 6, "COMMIT expected"),
    Broken("table-inside-table", _HEAD + "*nat\nCOMMIT\n", 5, "COMMIT expected before"),
    Broken("rule-before-table", "-A INPUT -j ACCEPT\n*filter\nCOMMIT\n", 1,
           "rule outside a table", False),
    Broken("bad-policy", "*filter\n:INPUT REJECT [0:0]\nCOMMIT\n", 2, 'bad policy "REJECT"'),
    Broken("user-chain-policy", "*filter\n:mine DROP [0:0]\nCOMMIT\n", 2,
           'user chain "mine" cannot have a policy', False),
    Broken("append-unknown-chain", _filter("-A INPUTT -j ACCEPT"), 5,
           'chain "INPUTT" does not exist (did you mean "INPUT"?)'),
    Broken("jump-unknown-chain", _filter("-A INPUT -j logdrop"), 5,
           'unknown target or chain "logdrop"'),
    Broken("jump-before-declared", "*filter\n-A INPUT -j later\n:later - [0:0]\nCOMMIT\n", 2,
           'unknown target or chain "later"'),
    Broken("jump-loop", "*filter\n:a - [0:0]\n:b - [0:0]\n-A INPUT -j a\n-A a -j b\n"
           "-A b -j a\nCOMMIT\n", 6, "jump loop: a -> b -> a"),
    Broken("goto-loop-closed-late", "*filter\n:a - [0:0]\n:b - [0:0]\n-A a -g b\n-A b -j a\n"
           "-A FORWARD -j a\nCOMMIT\n", 6, "jump loop"),
    Broken("self-loop", "*filter\n:a - [0:0]\n-A FORWARD -j a\n-A a -j a\nCOMMIT\n", 4,
           "jump loop: a -> a"),
    Broken("too-deep", "*filter\n" + "".join(f":c{i} - [0:0]\n" for i in range(1, 17))
           + "-A INPUT -j c1\n" + "".join(f"-A c{i} -j c{i + 1}\n" for i in range(1, 16))
           + "COMMIT\n", 33, "16 jumps below a built-in chain"),
    Broken("dnat-in-filter", _filter("-A INPUT -j DNAT --to-destination 10.0.0.1"), 5,
           "DNAT is only valid in the nat table"),
    Broken("dnat-in-postrouting", "*nat\n-A POSTROUTING -j DNAT --to-destination 10.0.0.1\n"
           "COMMIT\n", 2, "DNAT is not allowed in chain POSTROUTING"),
    Broken("masquerade-via-user-chain", "*nat\n:out - [0:0]\n-A out -j MASQUERADE\n"
           "-A PREROUTING -j out\nCOMMIT\n", 4,
           'MASQUERADE is not allowed in user chain "out", reached from PREROUTING'),
    Broken("notrack-in-filter", _filter("-A INPUT -j NOTRACK"), 5,
           "NOTRACK is only valid in the raw table"),
    Broken("reject-in-nat", "*nat\n-A PREROUTING -j REJECT\nCOMMIT\n", 2,
           "REJECT is only valid in the filter table"),
    Broken("reject-tcp-reset-without-p", _filter("-A INPUT -j REJECT --reject-with tcp-reset"),
           5, "needs -p tcp"),
    Broken("mac-in-output", _filter("-A OUTPUT -m mac --mac-source 02:00:00:00:00:01"), 5,
           'match "mac" is not allowed in chain OUTPUT'),
    Broken("port-range-backwards", _filter("-A INPUT -p tcp --sport 4:3"), 5,
           'invalid port range "4:3" (min > max)'),
    Broken("port-out-of-range", _filter("-A INPUT -p tcp --dport 70000"), 5,
           'port "70000" is out of range (0-65535)'),
    Broken("bad-address", _filter("-A INPUT -s 10.0.0.300 -j DROP"), 5,
           '"10.0.0.300" is not an IPv4 address'),
    Broken("bad-prefix", _filter("-A INPUT -d 10.0.0.0/40 -j DROP"), 5,
           'prefix length "40" is out of range (0-32)'),
    Broken("limit-too-fast", _filter("-A INPUT -m limit --limit 20000/s -j ACCEPT"), 5,
           'rate "20000/s" is out of range'),
    Broken("limit-burst", _filter("-A INPUT -m limit --limit-burst 10001 -j ACCEPT"), 5,
           '--limit-burst "10001" is out of range (1-10000)'),
    Broken("hashlimit-no-name", _filter("-A INPUT -m hashlimit --hashlimit-upto 5/s"), 5,
           'hashlimit: option "--hashlimit-name" must be specified'),
    Broken("recent-reap-alone", _filter("-A INPUT -m recent --rcheck --reap"), 5,
           '"--reap" also requires "--seconds"'),
    Broken("option-twice", _filter("-A INPUT -p tcp --dport 1 --dport 2"), 5,
           'option "--dport" can only be used once'),
    Broken("not-invertible", _filter("-A INPUT -m ttl ! --ttl-lt 5"), 5,
           'option "--ttl-lt" cannot be inverted'),
    Broken("two-targets", _filter("-A INPUT -j ACCEPT -j DROP"), 5, 'multiple "-j" options'),
    Broken("missing-value", _filter("-A INPUT -p tcp --dport"), 5,
           'option "--dport" requires a value'),
    Broken("unterminated-quote", _filter('-A INPUT -m comment --comment "open -j ACCEPT'), 5,
           "unterminated quote", False),
    Broken("o-in-input", _filter("-A INPUT -o eth0 -j DROP"), 5, "-o cannot be used in INPUT"),
    Broken("multiport-needs-proto", _filter("-A INPUT -m multiport --dports 1,2"), 5,
           "multiport needs -p tcp or -p udp"),
    Broken("tcp-match-wrong-proto", _filter("-A INPUT -p udp -m tcp --dport 1"), 5,
           'match "tcp" needs -p tcp'),
    Broken("abbreviation", _filter("-A INPUT -p tcp --dpo 22"), 5,
           'option "--dpo" is an abbreviation of "--dport"', False),
    Broken("new-chain-twice", "*filter\n:a - [0:0]\n-N a\nCOMMIT\n", 3,
           'chain "a" already exists'),
    Broken("bad-counters", "*filter\n[1:x] -A INPUT -j ACCEPT\nCOMMIT\n", 2,
           'byte count "x" is not a number', False),
    Broken("later-table-error-rejects-all", "*raw\n-A OUTPUT -j ACCEPT\nCOMMIT\n"
           "*filter\n-A INPUT -j NOSUCH\nCOMMIT\n", 5, 'unknown target or chain "NOSUCH"'),
    Broken("ct-unknown-helper", "*raw\n-A PREROUTING -p tcp -j CT --helper sip\nCOMMIT\n", 2,
           'CT: unknown helper "sip"', False),
    Broken("unsupported-command", _filter("-D INPUT 1"), 5, 'command "-D" is not supported',
           False),
    Broken("whitespace-only-line", _HEAD + "   \nCOMMIT\n", 5, "empty command"),
]
