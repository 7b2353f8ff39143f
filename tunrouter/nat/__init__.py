"""NAT: bindings decided once per connection, applied to every packet of it.

As in netfilter (nf_nat_core.c, nf_nat_proto.c), a binding is not stored
beside the connection: it is the connection's reply tuple, altered when the
binding is set up, plus the SRC_NAT/DST_NAT status bits.  Every later packet
is rewritten from the two tuples:

    range.py    NatRange: what a SNAT/DNAT/MASQUERADE/REDIRECT rule asks for
    binding.py  Binder: choose a unique tuple inside a range (port allocation)
                and alter the connection (nf_nat_setup_info)
    rewrite.py  pure functions over packet bytes: translate one packet from
                its connection (nf_nat_packet), and ICMP errors with their
                quoted header (nf_nat_icmp_reply_translation); checksums
                updated incrementally (RFC 1624)

The router runs them at netfilter's NAT hooks: destination manipulation at
PREROUTING and OUTPUT, source manipulation at POSTROUTING and INPUT.
"""
