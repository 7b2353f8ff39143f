# -m string (extensions/libxt_string.t)
:INPUT,FORWARD,OUTPUT
-m string --algo bm --string foo;-m string --string "foo" --algo bm;OK
-m string --algo kmp --string "a b" --from 10 --to 100 --icase;-m string --string "a b" --algo kmp --from 10 --to 100 --icase;OK
-m string --algo bm --hex-string "|41 42|C";-m string --string "ABC" --algo bm;OK
-m string --algo bm ! --string x;-m string ! --string "x" --algo bm;OK
-m string --algo bm --string x --to 65535;-m string --string "x" --algo bm;OK
-m string --algo bm --string x --from 0 --to 0;-m string --string "x" --algo bm --to 0;OK
-m string --algo bm --hex-string "|00|";-m string --hex-string "|00|" --algo bm;OK
-m string --algo bm --hex-string "|0d0a|GET";-m string --hex-string "|0d0a474554|" --algo bm;OK
-m string --algo bm --string "q\"uote";-m string --string "q\"uote" --algo bm;OK
-m string --string x;;FAIL
-m string --algo rabin --string x;;FAIL
-m string --algo bm --string x --from 10 --to 5;;FAIL
-m string --algo bm --hex-string "|4|";;FAIL
-m string --algo bm;;FAIL
