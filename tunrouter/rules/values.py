"""Values inside rules: numbers, ports, addresses, MACs, rates and quoted strings.

Each parse_* checks its bounds and raises OptionError naming the value, and
each format_* prints the form iptables-save prints (iptables 1.8.9, libxtables).
Addresses are ints (big-endian value of the 4 bytes), so a match compares
integers on the packet path.

Where iptables is more lenient than these parsers the difference is on
purpose and safe: what tunrouter accepts, iptables accepts.  Numbers are
decimal only (xtables_strtoui also takes 0x.. and octal 0..), addresses are
four dotted decimals (no host names: nothing is resolved), masks are
contiguous, and long options are never abbreviated.
"""
from tunrouter.rules import services
from tunrouter.rules.errors import OptionError

U32 = 0xFFFFFFFF


def parse_uint(text: str, lo: int, hi: int, what: str) -> int:
    """A decimal integer in [lo, hi]."""
    if not text.isdigit() or not text.isascii():
        raise OptionError(f'{what} "{text}" is not a number')
    value = int(text)
    if not lo <= value <= hi:
        raise OptionError(f'{what} "{text}" is out of range ({lo}-{hi})')
    return value


def parse_range(text: str, lo: int, hi: int, what: str, sep: str = ":") -> tuple[int, int]:
    """`a`, `a:b`, `:b` (from lo) or `a:` (to hi), with a <= b."""
    if sep not in text:
        value = parse_uint(text, lo, hi, what)
        return value, value
    first, _, last = text.partition(sep)
    a = parse_uint(first, lo, hi, what) if first else lo
    b = parse_uint(last, lo, hi, what) if last else hi
    if a > b:
        raise OptionError(f'invalid {what} range "{text}" (min > max)')
    return a, b


def format_range(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}:{hi}"


def parse_port(text: str, proto: int) -> int:
    """A port number or a service name for proto (tcp/udp), as getservbyname() resolves it."""
    if text.isdigit():
        return parse_uint(text, 0, 65535, "port")
    port = services.BY_PROTO.get(proto, {}).get(text)
    if port is None:
        raise OptionError(f'unknown port name "{text}"')
    return port


def parse_port_range(text: str, proto: int) -> tuple[int, int]:
    """`p`, `p:q`, `:q`, `p:` with names allowed, as --sport/--dport take them."""
    if ":" not in text:
        port = parse_port(text, proto)
        return port, port
    first, _, last = text.partition(":")
    a = parse_port(first, proto) if first else 0
    b = parse_port(last, proto) if last else 65535
    if a > b:
        raise OptionError(f'invalid port range "{text}" (min > max)')
    return a, b


def parse_ipv4(text: str) -> int:
    """Dotted decimal a.b.c.d as an int.

    Octets with a leading zero are refused: inet_aton() would read them as
    octal, a classic surprise.
    """
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and p.isascii() and (p == "0" or p[0] != "0")
                                  and int(p) <= 255 for p in parts):
        raise OptionError(f'"{text}" is not an IPv4 address')
    return (int(parts[0]) << 24) | (int(parts[1]) << 16) | (int(parts[2]) << 8) | int(parts[3])


def format_ipv4(addr: int) -> str:
    return "%d.%d.%d.%d" % (addr >> 24, (addr >> 16) & 255, (addr >> 8) & 255, addr & 255)


def prefix_mask(prefixlen: int) -> int:
    return (U32 << (32 - prefixlen)) & U32


def parse_prefix(text: str) -> tuple[int, int]:
    """`a.b.c.d[/len|/mask]` as (address, prefix length); the address is not masked."""
    addr_text, slash, mask_text = text.partition("/")
    addr = parse_ipv4(addr_text)
    if not slash:
        return addr, 32
    if "." not in mask_text:
        return addr, parse_uint(mask_text, 0, 32, "prefix length")
    mask = parse_ipv4(mask_text)
    prefixlen = 32 - (~mask & U32).bit_length()
    if mask != prefix_mask(prefixlen):
        raise OptionError(f'mask "{mask_text}" is not contiguous')
    return addr, prefixlen


def parse_mask(text: str) -> int:
    """A dotted netmask (recent --mask): any bit pattern, as xt_recent takes it."""
    return parse_ipv4(text)


def parse_mac(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) in (1, 2) and all(c in "0123456789abcdefABCDEF" for c in p)
                                  for p in parts):
        raise OptionError(f'"{text}" is not a MAC address')
    return bytes(int(p, 16) for p in parts)


def format_mac(mac: bytes) -> str:
    return ":".join("%02x" % b for b in mac)


# Rates, as libxt_limit and libxt_hashlimit read and print them.  A rate is
# stored as the average interval between packets in 1/scale seconds (limit:
# XT_LIMIT_SCALE = 10000; hashlimit revision 3: XT_HASHLIMIT_SCALE_v2 = 10**6).
RATE_UNITS = (("second", 1), ("minute", 60), ("hour", 3600), ("day", 86400))
PRINT_UNITS = (("day", 86400), ("hour", 3600), ("min", 60), ("sec", 1))


def parse_rate(text: str, scale: int, limit: int = U32) -> tuple[int, int]:
    """`N[/second|minute|hour|day]` (any prefix of the unit) as (interval, unit seconds).

    kernel-side value: interval = scale * unit / N, truncated; 0 is "too fast",
    and it must fit the kernel's field (limit: 32 bits; hashlimit: 64).
    """
    number, slash, unit = text.partition("/")
    mult = 1
    if slash:
        matches = [m for name, m in RATE_UNITS if unit and name.startswith(unit.lower())]
        if not matches:
            raise OptionError(f'bad rate "{text}"')
        mult = matches[0]
    if not number.isdigit() or int(number) == 0:
        raise OptionError(f'bad rate "{text}"')
    interval = scale * mult // int(number)
    if interval == 0 or interval > limit:
        raise OptionError(f'rate "{text}" is out of range')
    return interval, mult


def format_rate(interval: int, scale: int) -> tuple[str, int]:
    """The rate as iptables prints it, and the unit it chose in seconds.

    libxt_limit print_rate(): the largest unit that the interval does not
    exceed, then `unit / interval` truncated: 3000/s saves as 3333/sec.
    """
    units = [(name, secs * scale) for name, secs in PRINT_UNITS]
    i = 1
    while i < len(units):
        mult = units[i][1]
        if interval > mult or mult // interval < mult % interval:
            break
        i += 1
    name, mult = units[i - 1]
    return f"{mult // interval}/{name}", mult // scale


_BARE = frozenset("_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def quote(value: str) -> str:
    """libxtables xtables_save_string(): bare when safe, else in double quotes.

    Inside the quotes a backslash goes before each \\, " and '.
    """
    if value and all(c in _BARE for c in value):
        return value
    return '"' + "".join("\\" + c if c in "\"\\'" else c for c in value) + '"'
