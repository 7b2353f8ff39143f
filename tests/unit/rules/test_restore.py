"""iptables-restore semantics: all or nothing, --noflush, counters, -N/-I/-P, save round trips."""
import pytest
from corpus import GOOD
from rules_ctx import ctx
from scapy.all import IP, UDP

from tunrouter.rules import (
    FILTER,
    Engine,
    Hook,
    RuleSyntaxError,
    merge,
    parse,
    restore,
    save,
)
from tunrouter.rules.parse import tokenize

BASE = """*filter
:INPUT DROP [0:0]
:keep - [0:0]
-A INPUT -s 1.1.1.1 -j ACCEPT
-A keep -j ACCEPT
COMMIT
*nat
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
"""


def lines(ruleset, table=None):
    return [x for x in save(ruleset, table=table).splitlines() if not x.startswith("#")]


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_saving_what_was_restored_gives_the_same_text(path):
    once = save(parse(path.read_text()))
    assert save(parse(once)) == once


def test_restore_replaces_named_tables_and_keeps_the_others():
    current = parse(BASE)
    new = restore("*filter\n-A INPUT -j DROP\nCOMMIT\n", current)
    assert lines(new, "filter")[1:5] == [":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]",
                                         ":OUTPUT ACCEPT [0:0]", "-A INPUT -j DROP"]
    assert new.table("nat") is current.table("nat")


def test_noflush_appends_sets_policies_and_empties_redeclared_user_chains():
    """As iptables-restore --noflush does (checked against iptables-nft 1.8.9)."""
    current = parse(BASE)
    new = merge(current, "*filter\n:INPUT ACCEPT [9:9]\n:keep - [0:0]\n:new - [0:0]\n"
                         "-A INPUT -s 2.2.2.2 -j ACCEPT\nCOMMIT\n")
    assert lines(new, "filter") == [
        "*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
        ":keep - [0:0]", ":new - [0:0]",
        "-A INPUT -s 1.1.1.1/32 -j ACCEPT", "-A INPUT -s 2.2.2.2/32 -j ACCEPT", "COMMIT"]
    assert new.table("filter").chain("INPUT").rules[0] is current.table("filter").chain(
        "INPUT").rules[0]
    assert new.table("nat") is current.table("nat")


def test_noflush_can_use_chains_that_already_exist():
    current = parse(BASE)
    new = merge(current, "*filter\n-A INPUT -j keep\nCOMMIT\n")
    assert "-A INPUT -j keep" in lines(new)
    with pytest.raises(RuleSyntaxError):
        restore("*filter\n-A INPUT -j keep\nCOMMIT\n", current)    # flushed first: no keep


def test_a_failed_restore_changes_nothing():
    current = parse(BASE)
    before = save(current)
    with pytest.raises(RuleSyntaxError) as err:
        restore("*filter\n-A INPUT -j ACCEPT\nCOMMIT\n*nat\n-A POSTROUTING -j NOPE\nCOMMIT\n",
                current)
    assert err.value.lineno == 5
    assert save(current) == before


def test_counters_are_restored_only_with_c():
    text = ("*filter\n:INPUT ACCEPT [5:10]\n[3:4] -A INPUT -j ACCEPT\n"
            "-A INPUT -c 7 8 -j DROP\nCOMMIT\n")
    e = Engine(parse(text))
    assert [e.counters("filter", "INPUT", i) for i in (None, 0, 1)] == [(0, 0), (0, 0), (7, 8)]
    e = Engine(parse(text, counters=True))
    assert [e.counters("filter", "INPUT", i) for i in (None, 0, 1)] == [(5, 10), (3, 4), (7, 8)]
    assert "[3:4] -A INPUT -j ACCEPT" in e.save(counters=True)


def test_reload_keeps_counters_of_kept_rules_and_unnamed_tables():
    e = Engine(parse(BASE))
    pkt = IP(src="1.1.1.1", dst="10.2.0.2") / UDP()
    e.run(FILTER, Hook.INPUT, ctx(pkt))
    e.run(FILTER, Hook.INPUT, ctx(IP(src="9.9.9.9") / UDP()))
    kept = Engine(merge(e.ruleset, "*filter\n-A INPUT -j DROP\nCOMMIT\n"), previous=e)
    assert kept.counters("filter", "INPUT", 0) == (1, 28)
    assert kept.counters("filter", "INPUT", None) == (1, 28)          # policy: carried
    flushed = Engine(restore("*filter\n:INPUT DROP [0:0]\n-A INPUT -s 1.1.1.1 -j ACCEPT\nCOMMIT\n",
                             e.ruleset), previous=e)
    assert flushed.counters("filter", "INPUT", 0) == (0, 0)
    assert flushed.counters("filter", "INPUT", None) == (0, 0)


def test_new_chain_insert_and_policy_commands():
    rs = parse("*filter\n-N web\n-P FORWARD DROP\n-A FORWARD -j web\n-I FORWARD -j ACCEPT\n"
               "-I FORWARD 2 -s 10.0.0.0/8\n-A web -d 10.1.0.2,10.1.0.3 -j ACCEPT\nCOMMIT\n")
    assert lines(rs) == [
        "*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]",
        ":web - [0:0]", "-A FORWARD -j ACCEPT", "-A FORWARD -s 10.0.0.0/8", "-A FORWARD -j web",
        "-A web -d 10.1.0.2/32 -j ACCEPT", "-A web -d 10.1.0.3/32 -j ACCEPT", "COMMIT"]


def test_an_empty_table_block_leaves_no_table():
    assert parse("*nat\nCOMMIT\n").tables == ()
    assert parse("# only a comment\n\n").tables == ()


def test_tables_are_saved_raw_filter_nat_and_user_chains_sorted():
    rs = parse("*nat\n:b - [0:0]\nCOMMIT\n*raw\nCOMMIT\n*filter\n:zeta - [0:0]\n:Zeta - [0:0]\n"
               ":_x - [0:0]\n:alpha - [0:0]\nCOMMIT\n")
    text = lines(rs)
    assert [x for x in text if x.startswith("*")] == ["*filter", "*nat"]
    assert [x for x in text if x.endswith("- [0:0]")] == [
        ":Zeta - [0:0]", ":_x - [0:0]", ":alpha - [0:0]", ":zeta - [0:0]", ":b - [0:0]"]


@pytest.mark.parametrize("line,words", [
    ('-A INPUT -j ACCEPT', ["-A", "INPUT", "-j", "ACCEPT"]),
    ('-m comment --comment "a b"  -j  X', ["-m", "comment", "--comment", "a b", "-j", "X"]),
    (r'--comment "a \"q\" \\ b"', ["--comment", 'a "q" \\ b']),
    ('--comment ""', ["--comment", ""]),
    ('--comment a\\b', ["--comment", "a\\b"]),
    ('x\t"y"z', ["x", "y", "z"]),
])
def test_tokenize_as_add_param_to_argv(line, words):
    assert tokenize(line) == words
