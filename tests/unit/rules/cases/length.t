# -m length and -m ttl (extensions/libxt_length.t, libipt_ttl.t)
:INPUT,FORWARD,OUTPUT
-m length --length 100;=;OK
-m length --length 100:200;=;OK
-m length ! --length :200;-m length ! --length 0:200;OK
-m length --length 100:;-m length --length 100:65535;OK
-m length --length 200:100;;STRICT
-m length --length 65536;;FAIL
-m length;;FAIL
-m ttl --ttl-eq 64;=;OK
-m ttl --ttl-lt 5;=;OK
-m ttl --ttl-gt 5;=;OK
-m ttl ! --ttl-eq 64;=;OK
-m ttl ! --ttl-lt 5;;FAIL
-m ttl --ttl-eq 256;;FAIL
-m ttl --ttl-eq 1 --ttl-gt 2;;FAIL
-m ttl;;FAIL
