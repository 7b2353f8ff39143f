from hypothesis import given
from hypothesis import strategies as st

from tunrouter.wire.checksum import csum, csum_ok, csum_replace16, csum_replace32


def reference_csum(data: bytes) -> int:
    """RFC 1071 §4.1, word by word."""
    if len(data) & 1:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


@given(st.binary(max_size=200))
def test_csum_matches_word_by_word_sum(data):
    assert csum(data) == reference_csum(data)


def test_csum_of_all_zeros_and_all_ones():
    assert (csum(b"\0" * 4), csum(b"\xff" * 4)) == (0xFFFF, 0)


@given(st.binary(min_size=20, max_size=60).filter(lambda b: len(b) % 2 == 0 and any(b)),
       st.integers(0, 8), st.integers(0, 0xFFFF))
def test_incremental_16_equals_full_recompute(data, word, new):
    data = bytearray(data)
    data[-2:] = b"\0\0"
    check = csum(data)
    data[-2:] = check.to_bytes(2, "big")
    old = int.from_bytes(data[2 * word:2 * word + 2], "big")
    data[2 * word:2 * word + 2] = new.to_bytes(2, "big")
    patched = csum_replace16(check, old, new)
    data[-2:] = patched.to_bytes(2, "big")
    if any(data[:-2]):
        assert csum_ok(data)


@given(st.binary(min_size=24, max_size=24).filter(any), st.integers(0, 0xFFFFFFFF))
def test_incremental_32_equals_full_recompute(data, new):
    data = bytearray(data)
    data[20:22] = b"\0\0"
    check = csum(data)
    old = int.from_bytes(data[12:16], "big")
    data[12:16] = new.to_bytes(4, "big")
    expect = csum(data)
    got = csum_replace32(check, old, new)
    # 0x0000 and 0xFFFF are the same one's-complement value (RFC 1624 §3).
    assert got == expect or {got, expect} == {0, 0xFFFF}
