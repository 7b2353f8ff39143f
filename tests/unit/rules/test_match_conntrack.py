"""-m conntrack, -m state and -m helper on connections in every state.

Kernel: xt_conntrack.c, xt_state.c, xt_helper.c.
"""
import pytest
from rules_ctx import conn, matches
from scapy.all import IP, TCP

from tunrouter.conntrack.conn import CtInfo
from tunrouter.rules.matches import (
    IPS_ASSURED,
    IPS_DST_NAT,
    IPS_SEEN_REPLY,
    IPS_SRC_NAT,
)

PKT = IP(src="10.1.0.2", dst="10.2.0.2") / TCP(sport=40000, dport=80, flags="A")


@pytest.mark.parametrize("ctinfo,state,hit", [
    (CtInfo.NEW, "NEW", True), (CtInfo.NEW, "ESTABLISHED", False),
    (CtInfo.ESTABLISHED, "RELATED,ESTABLISHED", True),
    (CtInfo.ESTABLISHED_REPLY, "ESTABLISHED", True),
    (CtInfo.RELATED_REPLY, "RELATED", True), (CtInfo.RELATED, "NEW", False),
])
def test_ctstate_of_tracked_packets(ctinfo, state, hit):
    c = conn()
    assert matches(f"-m conntrack --ctstate {state}", PKT, ctinfo=ctinfo, conn=c) is hit
    assert matches(f"-m state --state {state}", PKT, ctinfo=ctinfo, conn=c) is hit
    assert matches(f"-m conntrack ! --ctstate {state}", PKT, ctinfo=ctinfo, conn=c) is not hit


def test_untracked_and_invalid_have_no_connection():
    assert matches("-m conntrack --ctstate UNTRACKED", PKT, ctinfo=CtInfo.UNTRACKED)
    assert matches("-m state --state INVALID", PKT, ctinfo=CtInfo.INVALID)
    assert not matches("-m conntrack --ctstate NEW", PKT, ctinfo=CtInfo.INVALID)


def test_without_connection_only_a_pure_ctstate_rule_matches():
    """kernel: if (ct == NULL) return info->match_flags & XT_CONNTRACK_STATE."""
    assert matches("-m conntrack --ctstate INVALID --ctproto tcp", PKT, ctinfo=CtInfo.INVALID)
    assert not matches("-m conntrack --ctproto tcp", PKT, ctinfo=CtInfo.INVALID)
    assert not matches("-m conntrack ! --ctstatus ASSURED", PKT, ctinfo=CtInfo.INVALID)


def test_snat_dnat_states_follow_the_status_bits():
    c = conn(status=IPS_DST_NAT)
    assert matches("-m conntrack --ctstate DNAT", PKT, ctinfo=CtInfo.NEW, conn=c)
    assert not matches("-m conntrack --ctstate SNAT", PKT, ctinfo=CtInfo.NEW, conn=c)
    c.status = IPS_SRC_NAT
    assert matches("-m conntrack --ctstate SNAT,DNAT", PKT, ctinfo=CtInfo.ESTABLISHED, conn=c)


@pytest.mark.parametrize("rule,hit", [
    ("--ctstatus ASSURED", True), ("--ctstatus EXPECTED", False), ("! --ctstatus EXPECTED", True),
    ("--ctstatus SEEN_REPLY,EXPECTED", True), ("--ctproto tcp", True), ("--ctproto 17", False),
    ("--ctorigsrc 10.1.0.2", True), ("--ctorigsrc 10.1.9.9/16", True),
    ("! --ctorigdst 10.2.0.0/16", False), ("--ctreplsrc 10.2.0.2", True),
    ("--ctrepldst 10.1.0.2", True), ("--ctorigsrcport 40000", True),
    ("--ctorigdstport 1:79", False), ("--ctreplsrcport 80", True),
    ("! --ctrepldstport 40000", False), ("--ctexpire 100:200", True), ("--ctexpire 0:99", False),
    ("! --ctexpire 0:99", True), ("--ctdir ORIGINAL", True), ("--ctdir REPLY", False),
])
def test_connection_fields(rule, hit):
    c = conn(status=IPS_ASSURED | IPS_SEEN_REPLY, deadline=1150.5)
    assert matches(f"-m conntrack {rule}", PKT, ctinfo=CtInfo.ESTABLISHED, conn=c,
                   now=1000.0) is hit


def test_ctdir_reply_matches_reply_packets():
    c = conn()
    assert matches("-m conntrack --ctdir REPLY", PKT, ctinfo=CtInfo.ESTABLISHED_REPLY, conn=c)
    assert not matches("-m conntrack --ctdir ORIGINAL", PKT, ctinfo=CtInfo.ESTABLISHED_REPLY,
                       conn=c)


def test_nat_reply_tuple_is_read_as_stored():
    c = conn(reply=(bytes([192, 0, 2, 9]), bytes([203, 0, 113, 1]), 6, 80, 61000))
    assert matches("-m conntrack --ctreplsrc 192.0.2.9 --ctrepldstport 61000", PKT,
                   ctinfo=CtInfo.ESTABLISHED, conn=c)


@pytest.mark.parametrize("rule,master,hit", [
    ("ftp", "ftp", True), ("ftp", None, False), ("ftp", "irc", False), ("! ftp", None, True),
    ("! ftp", "ftp", False), ("ftp-2121", "ftp", True), ('""', "tftp", True),
])
def test_helper_of_the_master_connection(rule, master, hit):
    inv, _, name = rule.rpartition(" ")
    text = f"-m helper {inv} --helper {name}".replace("  ", " ")
    assert matches(text, PKT, ctinfo=CtInfo.RELATED, conn=conn(),
                   master_helper=master) is hit
