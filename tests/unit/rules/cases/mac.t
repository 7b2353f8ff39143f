# -m mac (extensions/libxt_mac.t): only where there is an input device
:INPUT,FORWARD
-m mac --mac-source 00:11:22:33:44:55;=;OK
-m mac ! --mac-source 00:11:22:33:44:AA;-m mac ! --mac-source 00:11:22:33:44:aa;OK
-m mac --mac-source 00:11:22:33:44;;FAIL
-m mac --mac-source 00:11:22:33:44:zz;;FAIL
:OUTPUT
-m mac --mac-source 00:11:22:33:44:55;;FAIL
*raw
:PREROUTING
-m mac --mac-source 00:11:22:33:44:55;=;OK
