# Standard targets, jumps and bare rules (extensions/libxt_standard.t)
:INPUT,FORWARD,OUTPUT
-j ACCEPT;=;OK
-j DROP;=;OK
-j RETURN;=;OK
;;OK
--jump ACCEPT;-j ACCEPT;OK
-j ACCEPT -j DROP;;FAIL
-j;;FAIL
-j ACCPET;;FAIL
-j INPUT;;FAIL
-j nosuchchain;;FAIL
-g nosuchchain;;FAIL
! -j ACCEPT;;FAIL
! -m comment --comment x;;FAIL
-m nosuchmatch;;FAIL
-m tpc;;FAIL
-c 5 10 -j ACCEPT;-j ACCEPT;OK
-c 5;;FAIL
