"""The Internet checksum (RFC 1071) and its incremental update (RFC 1624)."""


def csum(data: bytes | bytearray | memoryview) -> int:
    """Return the checksum field value for data (one's complement of the sum).

    The one's-complement sum of 16-bit big-endian words equals the whole byte
    string read as one integer modulo 0xFFFF (2**16 == 1 mod 0xFFFF), so a single
    C-level int.from_bytes replaces a Python loop over words.  An odd length is
    padded with a zero byte (RFC 1071 §4.1).
    """
    if len(data) & 1:
        data = bytes(data) + b"\0"
    s = int.from_bytes(data, "big") % 0xFFFF
    if s == 0:
        # The folded sum is 0xFFFF (checksum 0) unless every byte is zero (sum 0).
        return 0 if any(data) else 0xFFFF
    return ~s & 0xFFFF


def csum_ok(data: bytes | bytearray | memoryview) -> bool:
    """True when data, checksum field included, sums to 0xFFFF (RFC 1071 §2)."""
    # Header data is never all zeros (version nibble), so "== 0 mod 0xFFFF"
    # means the folded sum is 0xFFFF.
    return int.from_bytes(data, "big") % 0xFFFF == 0


def csum_replace16(check: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for one changed 16-bit word."""
    s = (~check & 0xFFFF) + (~old & 0xFFFF) + new
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def csum_replace32(check: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3 applied to both halves of a changed 32-bit word (an address)."""
    s = ((~check & 0xFFFF) + (~(old >> 16) & 0xFFFF) + (~old & 0xFFFF)
         + (new >> 16) + (new & 0xFFFF))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
