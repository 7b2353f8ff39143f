"""The kernel's jhash2() (include/linux/jhash.h: Bob Jenkins' lookup3, 32-bit words).

NAT chooses an address inside a range from jhash2 of the source address
(find_best_ips_proto), so the same hash gives the same address Linux gives
a client, and a --persistent mapping survives moving between the two.
"""
_M = 0xFFFFFFFF
JHASH_INITVAL = 0xDEADBEEF


def _rol(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def _step(x: int, y: int, z: int, k: int) -> tuple[int, int]:
    """One line of __jhash_mix/__jhash_final's pattern: x -= z; x ^= rol32(z, k); z += y."""
    x = ((x - z) & _M) ^ _rol(z, k)
    return x, (z + y) & _M


def _fin(x: int, y: int, k: int) -> int:
    """One line of __jhash_final: x ^= y; x -= rol32(y, k)."""
    return ((x ^ y) - _rol(y, k)) & _M


def jhash2(k: list[int], initval: int) -> int:
    """jhash2(k, len(k), initval): k are u32 words as the CPU reads them."""
    n = len(k)
    a = b = c = (JHASH_INITVAL + (n << 2) + initval) & _M
    i = 0
    while n > 3:
        a = (a + k[i]) & _M
        b = (b + k[i + 1]) & _M
        c = (c + k[i + 2]) & _M
        # __jhash_mix(a, b, c)
        a, c = _step(a, b, c, 4)
        b, a = _step(b, c, a, 6)
        c, b = _step(c, a, b, 8)
        a, c = _step(a, b, c, 16)
        b, a = _step(b, c, a, 19)
        c, b = _step(c, a, b, 4)
        n -= 3
        i += 3
    if n == 0:
        return c
    if n == 3:
        c = (c + k[i + 2]) & _M
    if n >= 2:
        b = (b + k[i + 1]) & _M
    a = (a + k[i]) & _M
    # __jhash_final(a, b, c)
    c = _fin(c, b, 14)
    a = _fin(a, c, 11)
    b = _fin(b, a, 25)
    c = _fin(c, b, 16)
    a = _fin(a, c, 4)
    b = _fin(b, a, 14)
    return _fin(c, b, 24)


def nat_addr_hash(src: bytes, seed_dst: bytes | None) -> int:
    """find_best_ips_proto()'s j for an IPv4 tuple.

    The key is the source's union nf_inet_addr: the address and three zero
    words; each word as an x86 (little-endian) CPU loads it.  The seed is 0
    for --persistent, else the destination address word (^ zone id 0).
    """
    seed = 0 if seed_dst is None else int.from_bytes(seed_dst, "little")
    return jhash2([int.from_bytes(src, "little"), 0, 0, 0], seed)
