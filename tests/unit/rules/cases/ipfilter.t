# The IPv4 header filter: -s -d -i -o -p -f (iptables extensions/iptables.t).
:INPUT,FORWARD,OUTPUT
-s 10.0.0.1;-s 10.0.0.1/32;OK
-s 10.0.0.0/8;=;OK
-s 10.1.2.3/8;-s 10.0.0.0/8;OK
! -s 10.0.0.0/255.0.0.0;! -s 10.0.0.0/8;OK
-s 0.0.0.0/0;;OK
-d 192.168.1.0/24;=;OK
! -d 192.168.1.1;! -d 192.168.1.1/32;OK
--source 1.2.3.4 --destination 5.6.7.8;-s 1.2.3.4/32 -d 5.6.7.8/32;OK
--src 1.2.3.4 --dst 5.6.7.8;-s 1.2.3.4/32 -d 5.6.7.8/32;OK
-s 10.0.0.0/33;;FAIL
-s 10.0.0.256;;FAIL
-s 10.0.0.0/255.0.255.0;;STRICT
-s 1.2.3.4 -s 5.6.7.8;;FAIL
-s example.org;;FAIL
-p tcp;=;OK
-p TCP;-p tcp;OK
-p 6;-p tcp;OK
-p udp;=;OK
-p icmp;=;OK
-p 47;-p gre;OK
-p gre;=;OK
-p 255;=;OK
-p 256;;FAIL
-p all;;OK
-p 0;;OK
! -p tcp;=;OK
! -p all;;FAIL
--protocol udp;-p udp;OK
-p tpc;;FAIL
-f;=;OK
! -f;=;OK
--fragment;-f;OK
! -s 10.0.0.0/8 -p tcp -f;=;OK
-j ACCEPT -p tcp -s 1.2.3.4 -d 5.5.5.5 -f;-s 1.2.3.4/32 -d 5.5.5.5/32 -p tcp -f -j ACCEPT;OK
-s 1.2.3.4 ! -s 1.2.3.4;;FAIL
! ! -s 1.2.3.4;;FAIL
-x;;FAIL
foo;;FAIL
-s;;FAIL
!;;FAIL
:INPUT,FORWARD
-i eth0;=;OK
-i eth+;=;OK
! -i eth0;=;OK
-i +;;OK
--in-interface lan0;-i lan0;OK
-i abcdefghijklmno;=;OK
-i abcdefghijklmnop;;FAIL
:OUTPUT
-i eth0;;FAIL
-o eth0;=;OK
! -o wan+;=;OK
--out-interface lan0;-o lan0;OK
:FORWARD
-i lan0 -o wan0;=;OK
! -i lan+ ! -o wan+ -p udp;=;OK
:INPUT
-o eth0;;FAIL
