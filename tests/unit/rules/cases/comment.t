# -m comment and quoting (extensions/libxt_comment.t, xtables_save_string)
:INPUT,FORWARD,OUTPUT
-m comment --comment hello;=;OK
-m comment --comment "a b";=;OK
-m comment --comment "a \"q\" b";=;OK
-m comment --comment "it's";-m comment --comment "it\'s";OK
-m comment --comment "back\\slash";=;OK
-m comment --comment with_under-dash09;=;OK
-m comment --comment "x.y";=;OK
-m comment --comment a -m comment --comment b;=;OK
-m comment --comment "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345";;STRICT
-m comment --comment "unterminated;;STRICT
-m comment;;FAIL
-m comment --comm x;;STRICT
