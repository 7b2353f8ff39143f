# -j CT and -j NOTRACK (extensions/libxt_CT.t, libxt_NOTRACK.t): the raw table only
*raw
:PREROUTING,OUTPUT
-j NOTRACK;=;OK
-j CT --notrack;=;OK
-j CT;=;OK
-p tcp --dport 21 -j CT --helper ftp;-p tcp -m tcp --dport 21 -j CT --helper ftp;OK
-p udp --dport 69 -j CT --helper tftp;-p udp -m udp --dport 69 -j CT --helper tftp;OK
-p tcp -j CT --helper irc;=;OK
-p udp -j CT --helper amanda;=;OK
-j CT --helper ftp;;FAIL
-p udp -j CT --helper ftp;;FAIL
-p tcp -j CT --helper sip;;STRICT
-p tcp -j CT --notrack --helper ftp;;STRICT
-j CT --zone 1;;STRICT
-j CT --ctevents new;;STRICT
*filter
:INPUT,FORWARD,OUTPUT
-j NOTRACK;;FAIL
-j CT --notrack;;FAIL
*nat
:PREROUTING,OUTPUT
-j CT --notrack;;FAIL
