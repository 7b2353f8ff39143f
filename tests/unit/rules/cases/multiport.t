# -m multiport (extensions/libxt_multiport.t)
:INPUT,FORWARD,OUTPUT
-p tcp -m multiport --dports 22,80,1000:2000;=;OK
-p tcp -m multiport --sports 22;=;OK
-p tcp -m multiport ! --ports 1,2;=;OK
-p udp -m multiport --destination-ports 53;-p udp -m multiport --dports 53;OK
-p udp -m multiport --source-ports 53,123;-p udp -m multiport --sports 53,123;OK
-p tcp -m multiport --dports ssh,http;-p tcp -m multiport --dports 22,80;OK
-p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15;=;OK
-p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16;;FAIL
-p tcp -m multiport --dports 1:2,3:4,5:6,7:8,9:10,11:12,13:14,15;=;OK
-p tcp -m multiport --dports 1:2,3:4,5:6,7:8,9:10,11:12,13:14,15:16;;FAIL
-p tcp -m multiport --dports 5:1;;FAIL
-p tcp -m multiport --dports 1 --sports 2;;FAIL
-m multiport --dports 22;;FAIL
! -p tcp -m multiport --dports 22;;FAIL
-p tcp -m multiport;;FAIL
