"""NatRange: what a NAT rule asks for (kernel: struct nf_nat_range2 and its flags)."""
from dataclasses import dataclass

from tunrouter.rules.targets import Dnat, Masquerade, Redirect, Snat

# enum nf_nat_range_flags (include/uapi/linux/netfilter/nf_nat.h)
MAP_IPS = 1 << 0
PROTO_SPECIFIED = 1 << 1
PROTO_RANDOM = 1 << 2          # --random
PERSISTENT = 1 << 3            # --persistent
PROTO_RANDOM_FULLY = 1 << 4    # --random-fully
RANDOM_ALL = PROTO_RANDOM | PROTO_RANDOM_FULLY

# Which end of the packet a binding rewrites (enum nf_nat_manip_type).
SRC, DST = 0, 1

LOOPBACK = 0x7F000001


@dataclass(frozen=True, slots=True)
class NatRange:
    """Addresses (host-order ints) and ports a binding may use; flags say which apply."""
    flags: int = 0
    min_addr: int = 0
    max_addr: int = 0
    min_port: int = 0
    max_port: int = 0


def _flags(target) -> int:
    flags = PROTO_RANDOM if target.random else 0
    if getattr(target, "random_fully", False):
        flags |= PROTO_RANDOM_FULLY
    if getattr(target, "persistent", False):
        flags |= PERSISTENT
    return flags


def _with_ports(flags: int, addrs, ports) -> NatRange:
    lo = hi = plo = phi = 0
    if addrs is not None:
        flags |= MAP_IPS
        lo, hi = addrs
    if ports is not None:
        flags |= PROTO_SPECIFIED
        plo, phi = ports
    return NatRange(flags, lo, hi, plo, phi)


def for_target(target, address: int) -> tuple[NatRange, int]:
    """The range a NAT target asks for, and which end it rewrites.

    address is the port address MASQUERADE (the egress port's) or REDIRECT
    (the ingress port's, or 127.0.0.1 for locally made packets) maps to.
    """
    if type(target) is Snat:
        return _with_ports(_flags(target), target.addrs, target.ports), SRC
    if type(target) is Dnat:
        return _with_ports(_flags(target), target.addrs, target.ports), DST
    if type(target) is Masquerade:
        return _with_ports(_flags(target), (address, address), target.ports), SRC
    if type(target) is Redirect:
        return _with_ports(_flags(target), (address, address), target.ports), DST
    raise TypeError(f"{target!r} is not a NAT target")


NAT_TARGETS = (Snat, Dnat, Masquerade, Redirect)
