# -m iprange (extensions/libxt_iprange.t)
:INPUT,FORWARD,OUTPUT
-m iprange --src-range 10.0.0.1-10.0.0.5;=;OK
-m iprange ! --dst-range 10.0.0.1-10.0.0.5 --src-range 1.1.1.1-1.1.1.1;-m iprange --src-range 1.1.1.1-1.1.1.1 ! --dst-range 10.0.0.1-10.0.0.5;OK
-m iprange --src-range 10.0.0.5;-m iprange --src-range 10.0.0.5-10.0.0.5;OK
-m iprange --src-range 10.0.0.5-10.0.0.1;=;OK
-m iprange --src-range 10.0.0.1-10.0.0.300;;FAIL
-m iprange;;FAIL
