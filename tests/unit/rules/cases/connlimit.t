# -m connlimit (extensions/libxt_connlimit.t)
:INPUT,FORWARD,OUTPUT
-m connlimit --connlimit-above 2;-m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr;OK
-m connlimit --connlimit-upto 2 --connlimit-mask 24 --connlimit-daddr;=;OK
-m connlimit --connlimit-above 2 --connlimit-saddr;-m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr;OK
-m connlimit ! --connlimit-upto 2;-m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr;OK
-m connlimit ! --connlimit-above 2;-m connlimit --connlimit-upto 2 --connlimit-mask 32 --connlimit-saddr;OK
-m connlimit --connlimit-above 2 --connlimit-mask 33;;STRICT
-m connlimit --connlimit-above 2 --connlimit-upto 3;;FAIL
-m connlimit --connlimit-above 2 --connlimit-saddr --connlimit-daddr;;FAIL
-m connlimit;;FAIL
