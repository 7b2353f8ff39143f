# SNAT, DNAT, MASQUERADE, REDIRECT (extensions/libipt_SNAT.t, libipt_DNAT.t, ...): nat only
*nat
:POSTROUTING,INPUT
-j SNAT --to-source 1.2.3.4;=;OK
-j SNAT --to-source 1.2.3.4-1.2.3.10;=;OK
-p tcp -j SNAT --to-source 1.2.3.4:1000-2000;=;OK
-p udp -j SNAT --to-source 1.2.3.4-1.2.3.5:1000 --random --persistent;=;OK
-j SNAT --to-source 1.2.3.4 --random-fully;=;OK
-j SNAT --to-source 1.2.3.4 --persistent --random-fully --random;-j SNAT --to-source 1.2.3.4 --random --random-fully --persistent;OK
-j SNAT --to-source 1.2.3.4:1000-2000;;FAIL
-j SNAT --to-source 1.2.3.4 --to-source 1.2.3.5;;FAIL
-p tcp -j SNAT --to-source 1.2.3.4:5-4;;FAIL
-j SNAT;;FAIL
-j SNAT --to 1.2.3.4;;STRICT
-j SNAT --to-source 1.2.3.5-1.2.3.4;;STRICT
-p tcp -j SNAT --to-source 1.2.3.4:0;;STRICT
:POSTROUTING
-j MASQUERADE;=;OK
-p tcp -j MASQUERADE --to-ports 1000-2000;=;OK
-p tcp -j MASQUERADE --to-ports 1000 --random;=;OK
-j MASQUERADE --random-fully;=;OK
-j MASQUERADE --to-ports 1000;;FAIL
-o wan0 -j MASQUERADE;=;OK
:PREROUTING,OUTPUT
-p tcp -j DNAT --to-destination 1.2.3.4:80;=;OK
-j DNAT --to-destination 1.2.3.4;=;OK
-p tcp -j DNAT --to-destination :80;=;OK
-p tcp -j DNAT --to-destination :80-90;=;OK
-p udp -j DNAT --to-destination 10.0.0.1-10.0.0.3:53;=;OK
-j DNAT;;FAIL
-p tcp -j DNAT --to-destination 1.2.3.4:80-90/100;;STRICT
-p tcp -j REDIRECT --to-ports 8080;=;OK
-p tcp -j REDIRECT --to-ports 8080-8090 --random;=;OK
-j REDIRECT;=;OK
-j REDIRECT --to-ports 8080;;FAIL
-p tcp -j REDIRECT --to-ports 0;;STRICT
-j MASQUERADE;;FAIL
-j SNAT --to-source 1.2.3.4;;FAIL
:POSTROUTING,INPUT
-j DNAT --to-destination 1.2.3.4;;FAIL
-j REDIRECT;;FAIL
*filter
:INPUT,FORWARD,OUTPUT
-j SNAT --to-source 1.2.3.4;;FAIL
-j DNAT --to-destination 1.2.3.4;;FAIL
-j MASQUERADE;;FAIL
-j REDIRECT;;FAIL
