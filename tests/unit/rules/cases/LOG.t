# -j LOG and -j NFLOG (extensions/libxt_LOG.t, libxt_NFLOG.t)
:INPUT,FORWARD,OUTPUT
-j LOG;=;OK
-j LOG --log-prefix abc --log-level 4;-j LOG --log-prefix abc;OK
-j LOG --log-prefix "x: ";=;OK
-j LOG --log-level warning;-j LOG;OK
-j LOG --log-level emerg;-j LOG --log-level 0;OK
-j LOG --log-level alert;-j LOG --log-level 1;OK
-j LOG --log-level crit;-j LOG --log-level 2;OK
-j LOG --log-level error;-j LOG --log-level 3;OK
-j LOG --log-level notice;-j LOG --log-level 5;OK
-j LOG --log-level info;-j LOG --log-level 6;OK
-j LOG --log-level debug --log-macdecode;-j LOG --log-level 7 --log-macdecode;OK
-j LOG --log-level 7 --log-tcp-sequence --log-tcp-options --log-ip-options --log-uid;=;OK
-j LOG --log-tcp-options --log-prefix "SYN flood: ";-j LOG --log-prefix "SYN flood: " --log-tcp-options;OK
-j LOG --log-prefix 01234567890123456789012345678;=;OK
-j LOG --log-prefix 012345678901234567890123456789;;STRICT
-j LOG --log-prefix "";;FAIL
-j LOG --log-level 8;;FAIL
-j LOG --log-level loud;;FAIL
-j LOG --log-prefx x;;FAIL
-j NFLOG;=;OK
-j NFLOG --nflog-group 5 --nflog-prefix "p x" --nflog-threshold 2;-j NFLOG --nflog-prefix "p x" --nflog-group 5 --nflog-threshold 2;OK
-j NFLOG --nflog-size 100;=;OK
-j NFLOG --nflog-size 0;=;OK
-j NFLOG --nflog-group 65535;=;OK
-j NFLOG --nflog-group 65536;;FAIL
-j NFLOG --nflog-range 100;;STRICT
-j NFLOG --nflog-threshold 0;;STRICT
*nat
:PREROUTING,INPUT,OUTPUT,POSTROUTING
-j LOG --log-prefix nat;=;OK
-j NFLOG --nflog-group 1;=;OK
*raw
:PREROUTING,OUTPUT
-j LOG;=;OK
