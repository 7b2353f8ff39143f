# -m hashlimit, revision 3 (extensions/libxt_hashlimit.t)
:INPUT,FORWARD,OUTPUT
-m hashlimit --hashlimit-upto 10/s --hashlimit-name foo;-m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 5 --hashlimit-name foo;OK
-m hashlimit --hashlimit-above 10/min --hashlimit-burst 3 --hashlimit-mode srcip,dstport --hashlimit-name foo --hashlimit-htable-expire 5000 --hashlimit-srcmask 24 --hashlimit-dstmask 16 --hashlimit-htable-size 100 --hashlimit-htable-max 200;-m hashlimit --hashlimit-above 10/min --hashlimit-burst 3 --hashlimit-mode srcip,dstport --hashlimit-name foo --hashlimit-htable-size 100 --hashlimit-htable-max 200 --hashlimit-htable-expire 5000 --hashlimit-srcmask 24 --hashlimit-dstmask 16;OK
-m hashlimit --hashlimit-name a --hashlimit-upto 1/hour --hashlimit-mode dstip,srcip;-m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 5 --hashlimit-mode srcip,dstip --hashlimit-name a;OK
-m hashlimit --hashlimit-name a --hashlimit-upto 1/s --hashlimit-srcmask 32;-m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-name a;OK
-m hashlimit --hashlimit 5/s --hashlimit-name a;-m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name a;OK
-m hashlimit --hashlimit-upto 60/min --hashlimit-name a;-m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-name a --hashlimit-htable-expire 60000;OK
-m hashlimit --hashlimit-upto 3000/s --hashlimit-name a;-m hashlimit --hashlimit-upto 3003/sec --hashlimit-burst 5 --hashlimit-name a;OK
-m hashlimit --hashlimit-upto 7/s --hashlimit-name a --hashlimit-htable-gcinterval 500;-m hashlimit --hashlimit-upto 7/sec --hashlimit-burst 5 --hashlimit-name a --hashlimit-htable-gcinterval 500;OK
-m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 10 --hashlimit-name a --hashlimit-mode srcport,dstport;-m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 10 --hashlimit-mode srcport,dstport --hashlimit-name a;OK
-m hashlimit --hashlimit-upto 1/day --hashlimit-burst 10 --hashlimit-name a;;FAIL
-m hashlimit --hashlimit-upto 10/s;;FAIL
-m hashlimit --hashlimit-name a;;FAIL
-m hashlimit --hashlimit-upto 1/s --hashlimit-above 1/s --hashlimit-name a;;FAIL
-m hashlimit --hashlimit-upto 1/s --hashlimit-name a --hashlimit-mode srcip,bogus;;FAIL
-m hashlimit --hashlimit-upto 1/s --hashlimit-name a --hashlimit-srcmask 33;;FAIL
-m hashlimit --hashlimit-upto 1/s --hashlimit-name abcdefghijklmnopabcdefghijklmnopabcdefghijklmnopabcdefghijklmnop;-m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-name abcdefghijklmnopabcdefghijklmnopabcdefghijklmnopabcdefghijklmnop;OK
-m hashlimit --hashlimit-name a --hashlimit-upto 100kb/s;;STRICT
-m hashlimit --hashlimit-name a --hashlimit-upto 3/s --hashlimit-rate-match;;STRICT
