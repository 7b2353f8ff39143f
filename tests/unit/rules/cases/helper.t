# -m helper and -m addrtype (extensions/libxt_helper.t, libxt_addrtype.t)
:INPUT,FORWARD,OUTPUT
-m helper --helper ftp;=;OK
-m helper ! --helper irc;=;OK
-m helper --helper ftp-2121;=;OK
-m helper;;FAIL
-m addrtype --src-type LOCAL;=;OK
-m addrtype --dst-type UNICAST,BROADCAST ! --src-type LOCAL;-m addrtype ! --src-type LOCAL --dst-type UNICAST,BROADCAST;OK
-m addrtype --dst-type local;-m addrtype --dst-type LOCAL;OK
-m addrtype --src-type UNSPEC,LOCAL,UNICAST,BROADCAST,ANYCAST,MULTICAST,BLACKHOLE,UNREACHABLE,PROHIBIT,THROW,NAT,XRESOLVE;-m addrtype --src-type UNSPEC,UNICAST,LOCAL,BROADCAST,ANYCAST,MULTICAST,BLACKHOLE,UNREACHABLE,PROHIBIT,THROW,NAT,XRESOLVE;OK
-m addrtype --dst-type BLACKHOLE,LOCAL;-m addrtype --dst-type LOCAL,BLACKHOLE;OK
-m addrtype --dst-type NOWHERE;;FAIL
-m addrtype;;FAIL
:FORWARD
-m addrtype --src-type LOCAL --limit-iface-in;=;OK
-m addrtype --src-type LOCAL --limit-iface-out;=;OK
-m addrtype --src-type LOCAL --limit-iface-in --limit-iface-out;;FAIL
:INPUT
-m addrtype --dst-type LOCAL --limit-iface-in;=;OK
-m addrtype --dst-type LOCAL --limit-iface-out;;FAIL
:OUTPUT
-m addrtype --src-type LOCAL --limit-iface-in;;FAIL
-m addrtype --src-type LOCAL --limit-iface-out;=;OK
