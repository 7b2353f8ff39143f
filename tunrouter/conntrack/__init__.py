"""Connection tracking: netfilter's conntrack, in Python, for one router process.

What is here: tuples and directions (tuple.py), the connection entry (conn.py),
one tracker per L4 protocol (proto/), the table with lookup, confirm, expiry,
early drop, events and statistics (table.py), the run-time knobs under the
kernel's sysctl names (settings.py), and the text of `conntrack -L/-E/-S`
(format.py).  What is not: NAT, helpers and expectations (later packages add
them as Conn fields and table hooks), and any I/O: time comes in as `now`.

The reference is the Linux kernel running on the build machine (6.18), as
described in CONNTRACK-REFERENCE.md; differences are listed in the module
docstrings where they occur.
"""
