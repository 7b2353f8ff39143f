"""Tuples and their inversion (kernel: nf_ct_invert_tuple)."""
import pytest
from hypothesis import given
from hypothesis.strategies import binary, integers, sampled_from

from tunrouter.conntrack.tuple import ICMP_INVERSE, Dir, invert

A, B = bytes([10, 0, 1, 2]), bytes([10, 0, 2, 2])


def test_dir_values():
    assert (Dir.ORIGINAL, Dir.REPLY) == (0, 1)


@pytest.mark.parametrize("t,want", [
    ((A, B, 6, 40000, 80), (B, A, 6, 80, 40000)),
    ((A, B, 17, 5353, 53), (B, A, 17, 53, 5353)),
    ((A, B, 253, 0, 0), (B, A, 253, 0, 0)),
    ((A, B, 1, 7, 8 << 8), (B, A, 1, 7, 0 << 8)),          # echo -> echo reply, same id
    ((A, B, 1, 7, 13 << 8 | 0), (B, A, 1, 7, 14 << 8)),    # timestamp
    ((A, B, 1, 7, 15 << 8), (B, A, 1, 7, 16 << 8)),        # information
    ((A, B, 1, 7, 17 << 8), (B, A, 1, 7, 18 << 8)),        # address mask
    ((A, B, 1, 9, 0 << 8), (B, A, 1, 9, 8 << 8)),          # a reply inverts to its request
])
def test_invert(t, want):
    assert invert(t) == want


@pytest.mark.parametrize("icmp_type", [3, 4, 5, 9, 10, 11, 12, 19, 40, 255])
def test_invert_icmp_without_inverse(icmp_type):
    assert invert((A, B, 1, 7, icmp_type << 8)) is None


def test_invert_icmp_keeps_code():
    assert invert((A, B, 1, 7, 8 << 8 | 3)) == (B, A, 1, 7, 3)


@given(src=binary(min_size=4, max_size=4), dst=binary(min_size=4, max_size=4),
       proto=sampled_from([6, 17, 47, 132]), sport=integers(0, 65535), dport=integers(0, 65535))
def test_invert_twice_is_identity(src, dst, proto, sport, dport):
    t = (src, dst, proto, sport, dport)
    assert invert(invert(t)) == t


@given(ident=integers(0, 65535), icmp_type=sampled_from(sorted(ICMP_INVERSE)), code=integers(0, 255))
def test_invert_icmp_twice_is_identity(ident, icmp_type, code):
    t = (A, B, 1, ident, icmp_type << 8 | code)
    assert invert(invert(t)) == t
