"""The forwarding table: connected and static routes, longest-prefix match.

A lookup probes one dict per prefix length present, longest first.  The
router caches the result per destination for forwarded traffic.
"""
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Route:
    """Where a destination goes: out of port, to next_hop (None: the destination itself)."""
    prefix: int               # network as an int
    prefixlen: int
    port: int
    next_hop: bytes | None
    connected: bool = False


class Fib:
    def __init__(self):
        self._by_len: dict[int, dict[int, Route]] = {}
        self._lens: list[int] = []            # prefix lengths present, longest first

    def add(self, route: Route) -> None:
        self._by_len.setdefault(route.prefixlen, {})[route.prefix] = route
        self._lens = sorted(self._by_len, reverse=True)

    def remove_port(self, port: int) -> None:
        """Forget every route out of port (its device went away, as the kernel's
        fib_sync_down_dev() does)."""
        for n in list(self._by_len):
            table = self._by_len[n]
            for prefix in [p for p, r in table.items() if r.port == port]:
                del table[prefix]
            if not table:
                del self._by_len[n]
        self._lens = sorted(self._by_len, reverse=True)

    def routes(self) -> list[Route]:
        return [r for n in self._lens for r in self._by_len[n].values()]

    def lookup(self, dst: bytes) -> Route | None:
        return self._match(int.from_bytes(dst, "big"))

    def _match(self, addr: int) -> Route | None:
        for n in self._lens:
            mask = (0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF
            route = self._by_len[n].get(addr & mask)
            if route is not None:
                return route
        return None

    def resolve(self, dst: bytes, via: bytes | None) -> Route | None:
        """The route a static route 'via' a gateway uses: the connected one reaching it."""
        r = self._match(int.from_bytes(via or dst, "big"))
        return r if r is not None and r.connected else None
