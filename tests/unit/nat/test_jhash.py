"""jhash2 and the address NAT picks from a range: the ones Linux 6.18 picked.

The expectations were read from the kernel's conntrack table with
`SNAT --to-source 10.72.0.10-10.72.0.13 [--persistent]`
(tests/differential/nat_scenarios.py: snat_address_range*).
"""
import ipaddress

import pytest

from tunrouter.nat.binding import Binder
from tunrouter.nat.jhash import jhash2
from tunrouter.nat.range import MAP_IPS, PERSISTENT, SRC, NatRange


def _a(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def test_jhash2_empty_key_is_the_initial_value():
    assert jhash2([], 0) == 0xDEADBEEF
    assert jhash2([], 1) == 0xDEADBEF0


@pytest.mark.parametrize("src,dst,persistent,chosen", [
    ("10.71.0.2", "10.72.0.2", True, "10.72.0.12"),
    ("10.71.0.2", "10.72.0.3", True, "10.72.0.12"),
    ("10.71.0.3", "10.72.0.2", True, "10.72.0.11"),
    ("10.71.0.2", "10.72.0.2", False, "10.72.0.13"),
    ("10.71.0.2", "10.72.0.3", False, "10.72.0.12"),
    ("10.71.0.3", "10.72.0.2", False, "10.72.0.10"),
    ("10.71.0.3", "10.72.0.3", False, "10.72.0.10"),
])
def test_range_address_is_the_kernels(src, dst, persistent, chosen):
    lo, hi = (int(ipaddress.IPv4Address(x)) for x in ("10.72.0.10", "10.72.0.13"))
    r = NatRange(MAP_IPS | (PERSISTENT if persistent else 0), lo, hi)
    t = (_a(src), _a(dst), 17, 40000, 53)
    assert Binder(table=None)._best_ip(t, r, SRC)[0] == _a(chosen)
