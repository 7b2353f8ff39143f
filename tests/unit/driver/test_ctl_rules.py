"""iptables-restore / -save / -L / -Z over the control handlers, and the offline --test."""
import pytest
from packets import H1, LAN_TUN, SRV, WAN, make_router, udp4

from tunrouter.cli.main import main
from tunrouter.driver.ctl_rules import rules_handlers

RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:syn-flood - [0:0]
-A INPUT -i lo -j ACCEPT
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -s 10.1.0.0/24 ! -d 10.2.0.5/32 -i lan0 -o wan0 -p tcp -m tcp --dport 80 -j ACCEPT
-A FORWARD -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j syn-flood
-A FORWARD -p tcp -j REJECT --reject-with tcp-reset
-A FORWARD -j LOG --log-prefix "fw drop: "
-A FORWARD -p udp
-A syn-flood -m limit --limit 10/sec --limit-burst 100 -j RETURN
-A syn-flood -j DROP
COMMIT
"""

# `iptables -L -n -v` of RULES from iptables v1.8.9 (nf_tables) on this machine.
REAL_NV = """\
Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         
    0     0 ACCEPT     0    --  lo     *       0.0.0.0/0            0.0.0.0/0           

Chain FORWARD (policy DROP 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         
    0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            ctstate RELATED,ESTABLISHED
    0     0 ACCEPT     6    --  lan0   wan0    10.1.0.0/24         !10.2.0.5             tcp dpt:80
    0     0 syn-flood  6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp flags:0x17/0x02
    0     0 REJECT     6    --  *      *       0.0.0.0/0            0.0.0.0/0            reject-with tcp-reset
    0     0 LOG        0    --  *      *       0.0.0.0/0            0.0.0.0/0            LOG flags 0 level 4 prefix "fw drop: "
    0     0            17   --  *      *       0.0.0.0/0            0.0.0.0/0           

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         

Chain syn-flood (1 references)
 pkts bytes target     prot opt in     out     source               destination         
    0     0 RETURN     0    --  *      *       0.0.0.0/0            0.0.0.0/0            limit: avg 10/sec burst 100
    0     0 DROP       0    --  *      *       0.0.0.0/0            0.0.0.0/0           
"""

REAL_FORWARD_X = """\
Chain FORWARD (policy DROP 0 packets, 0 bytes)
num      pkts      bytes target     prot opt in     out     source               destination         
1           0        0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            ctstate RELATED,ESTABLISHED
"""

REAL_INPUT = """\
Chain INPUT (policy ACCEPT)
target     prot opt source               destination         
ACCEPT     all  --  anywhere             anywhere            
"""


@pytest.fixture
def ctl():
    r = make_router()
    return r, rules_handlers(r, lambda: None)


def test_listing_matches_iptables(ctl):
    _, h = ctl
    h["ipt_restore"]({"text": RULES})
    assert h["ipt_list"]({"numeric": True, "verbose": True}) == REAL_NV
    text = h["ipt_list"]({"chain": "FORWARD", "numeric": True, "verbose": True, "exact": True,
                          "line_numbers": True})
    assert text.startswith(REAL_FORWARD_X)
    assert h["ipt_list"]({"chain": "INPUT"}) == REAL_INPUT


def test_listing_without_a_ruleset_shows_empty_builtin_chains(ctl):
    _, h = ctl
    assert h["ipt_list"]({"table": "nat"}).startswith(
        "Chain PREROUTING (policy ACCEPT)\ntarget     prot opt source")
    assert h["ipt_save"]({}) == ""
    with pytest.raises(ValueError, match="chain `nosuch'"):
        h["ipt_list"]({"chain": "nosuch"})


def test_restore_is_atomic_and_keeps_conntrack(ctl):
    r, h = ctl
    h["ipt_restore"]({"text": RULES.replace("-A FORWARD -p tcp -j REJECT --reject-with tcp-reset\n",
                                            "-A FORWARD -i lan0 -j ACCEPT\n")})
    assert r.process(LAN_TUN, udp4(H1, SRV, 5000, 53), 0.0)
    before = h["ipt_save"]({})
    with pytest.raises(ValueError, match='line 7: unknown match "conntrak"'):
        h["ipt_restore"]({"text": RULES.replace("-m conntrack", "-m conntrak")})
    with pytest.raises(ValueError, match='CT: unknown helper "sip"'):
        h["ipt_restore"]({"text": "*raw\n:PREROUTING ACCEPT [0:0]\n"
                                  "-A PREROUTING -p tcp -j CT --helper sip\nCOMMIT\n"})
    assert h["ipt_save"]({}) == before
    assert h["ipt_restore"]({"text": RULES, "test": True}) == {"loaded": False}
    assert h["ipt_save"]({}) == before
    h["ipt_restore"]({"text": RULES})
    assert r.conntrack.count() == 1
    assert r.process(WAN, udp4(SRV, H1, 53, 5000), 0.1)      # still ESTABLISHED


def test_save_counters_and_zero(ctl):
    r, h = ctl
    h["ipt_restore"]({"text": RULES})
    r.process(LAN_TUN, udp4(H1, SRV, 5000, 53), 0.0)
    saved = h["ipt_save"]({"counters": True, "table": "filter"})
    assert ":FORWARD DROP [1:29]" in saved          # no target on -p udp: the policy decides
    assert "[1:29] -A FORWARD -p udp" in saved
    h["ipt_zero"]({"chain": "FORWARD"})
    assert "[1:29]" not in h["ipt_save"]({"counters": True})
    with pytest.raises(ValueError, match="does not exist"):
        h["ipt_zero"]({"chain": "nosuch"})


def test_restore_noflush_appends(ctl):
    _, h = ctl
    h["ipt_restore"]({"text": RULES})
    h["ipt_restore"]({"text": "*filter\n-A INPUT -p icmp -j ACCEPT\nCOMMIT\n", "noflush": True})
    saved = h["ipt_save"]({})
    assert "-A INPUT -i lo -j ACCEPT\n-A INPUT -p icmp -j ACCEPT\n" in saved


def test_offline_test_needs_no_router(tmp_path, capsys):
    good = tmp_path / "good.rules"
    good.write_text(RULES)
    bad = tmp_path / "bad.rules"
    bad.write_text(RULES.replace("--dport 80", "--dprot 80"))
    assert main(["iptables-restore", "--test", str(good)]) == 0
    assert main(["iptables-restore", "--test", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: line 8: " in err and "--dprot" in err


# Every match with an -L wording of its own, and `iptables -L FORWARD -n -v` of it
# from iptables v1.8.9 (nf_tables) on this machine.
MATCHES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m iprange --src-range 10.0.0.1-10.0.0.9 -j ACCEPT
-A FORWARD -m iprange ! --dst-range 10.0.0.1-10.0.0.9 -j ACCEPT
-A FORWARD -m mac --mac-source 02:00:00:00:00:01 -j ACCEPT
-A FORWARD -m addrtype --dst-type LOCAL -j ACCEPT
-A FORWARD -m addrtype --src-type UNICAST ! --dst-type BROADCAST --limit-iface-in -j ACCEPT
-A FORWARD -p tcp -m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr -j DROP
-A FORWARD -p tcp -m connlimit --connlimit-upto 5 --connlimit-mask 24 --connlimit-daddr -j ACCEPT
-A FORWARD -m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name foo -j ACCEPT
-A FORWARD -m hashlimit --hashlimit-above 100/min --hashlimit-mode srcip,dstport --hashlimit-name bar --hashlimit-htable-expire 30000 -j DROP
-A FORWARD -m recent --set --name SSH --mask 255.255.255.255 --rsource -j ACCEPT
-A FORWARD -m recent --update --seconds 60 --hitcount 4 --name SSH --mask 255.255.255.255 --rsource -j DROP
-A FORWARD -m recent --rcheck --seconds 10 --reap --name X --mask 255.255.255.0 --rdest -j DROP
-A FORWARD -m string --string "GET /" --algo bm --to 65535 -j DROP
-A FORWARD -m string --hex-string "|00ff|" --algo kmp --from 10 --to 100 --icase -j DROP
-A FORWARD -m helper --helper ftp -j ACCEPT
-A FORWARD -m conntrack --ctstate NEW --ctproto 6 --ctorigsrc 10.0.0.1 --ctorigdstport 80 -j ACCEPT
-A FORWARD -m conntrack --ctstatus ASSURED --ctexpire 10:20 --ctdir ORIGINAL -j ACCEPT
COMMIT
"""

REAL_MATCHES = """Chain FORWARD (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         
    0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            source IP range 10.0.0.1-10.0.0.9
    0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            destination IP range ! 10.0.0.1-10.0.0.9
    0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            MAC 02:00:00:00:00:01
    0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            ADDRTYPE match dst-type LOCAL
    0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            ADDRTYPE match src-type UNICAST dst-type !BROADCAST limit-in
    0     0 DROP       6    --  *      *       0.0.0.0/0            0.0.0.0/0            #conn src/32 > 2
    0     0 ACCEPT     6    --  *      *       0.0.0.0/0            0.0.0.0/0            #conn dst/24 <= 5
    0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            limit: up to 10/sec burst 5 mode srcip
    0     0 DROP       0    --  *      *       0.0.0.0/0            0.0.0.0/0            limit: above 100/min burst 5 mode srcip-dstport htable-expire 30000
    0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            recent: SET name: SSH side: source mask: 255.255.255.255
    0     0 DROP       0    --  *      *       0.0.0.0/0            0.0.0.0/0            recent: UPDATE seconds: 60 hit_count: 4 name: SSH side: source mask: 255.255.255.255
    0     0 DROP       0    --  *      *       0.0.0.0/0            0.0.0.0/0            recent: CHECK seconds: 10 reap name: X side: dest mask: 255.255.255.0
    0     0 DROP       0    --  *      *       0.0.0.0/0            0.0.0.0/0            STRING match  "GET /" ALGO name bm
    0     0 DROP       0    --  *      *       0.0.0.0/0            0.0.0.0/0            STRING match  "|00ff|" ALGO name kmp FROM 10 TO 100 ICASE
    0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            helper match "ftp"
    0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            ctstate NEW ctproto 6 ctorigsrc 10.0.0.1 ctorigdstport 80
    0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            ctstatus ASSURED ctexpire 10:20 ctdir ORIGINAL
"""


def test_every_match_lists_as_iptables_does(ctl):
    _, h = ctl
    h["ipt_restore"]({"text": MATCHES})
    assert h["ipt_list"]({"chain": "FORWARD", "numeric": True, "verbose": True}) == REAL_MATCHES
