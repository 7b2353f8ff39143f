# -m recent (extensions/libxt_recent.t)
:INPUT,FORWARD,OUTPUT
-m recent --set;-m recent --set --name DEFAULT --mask 255.255.255.255 --rsource;OK
-m recent --name foo --rcheck --seconds 60 --hitcount 3 --rttl --rsource;-m recent --rcheck --seconds 60 --hitcount 3 --rttl --name foo --mask 255.255.255.255 --rsource;OK
-m recent --update --seconds 10 --reap --rdest --mask 255.255.255.0;-m recent --update --seconds 10 --reap --name DEFAULT --mask 255.255.255.0 --rdest;OK
-m recent --remove;-m recent --remove --name DEFAULT --mask 255.255.255.255 --rsource;OK
-m recent ! --rcheck;-m recent ! --rcheck --name DEFAULT --mask 255.255.255.255 --rsource;OK
-m recent --rcheck --hitcount 20;-m recent --rcheck --hitcount 20 --name DEFAULT --mask 255.255.255.255 --rsource;OK
-m recent --rcheck --hitcount 255;-m recent --rcheck --hitcount 255 --name DEFAULT --mask 255.255.255.255 --rsource;OK
-m recent --rcheck --hitcount 256;;STRICT
-m recent --name foo --set --mask 255.255.255.255;-m recent --set --name foo --mask 255.255.255.255 --rsource;OK
! -m recent --rcheck;;FAIL
-m recent --reap --rcheck;;FAIL
-m recent --set --seconds 5;;FAIL
-m recent --remove --hitcount 5;;FAIL
-m recent --rcheck --set;;FAIL
-m recent --rsource --rdest --set;;STRICT
-m recent;;FAIL
