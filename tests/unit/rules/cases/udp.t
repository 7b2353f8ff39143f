# -m udp (extensions/libxt_udp.t)
:INPUT,FORWARD,OUTPUT
-p udp -m udp --sport 53;=;OK
-p udp --dport 53;-p udp -m udp --dport 53;OK
-p udp --dport domain;-p udp -m udp --dport 53;OK
-p udp -m udp ! --dport 1:1023;=;OK
-p udp -m udp --sport 1024: --dport :1023;-p udp -m udp --sport 1024:65535 --dport 0:1023;OK
-p udp -m udp --dport 2:1;;STRICT
-p udp -m udp --syn;;FAIL
-p udp -m udp;=;OK
-m udp --dport 53;;FAIL
