"""Setting up a connection's NAT binding (kernel: nf_nat_setup_info, get_unique_tuple).

A binding is decided on a connection's first packet, before the entry is
confirmed.  The tuple the packet would have after translation must be
unique: no other live entry may hold its inverse, or replies could not be
told apart.  The choice follows get_unique_tuple() step by step:

1. SRC manip without --random/--random-fully: keep the current tuple when it
   is already inside the range and free; otherwise reuse the mapping an
   existing connection from the same source address and port got (so one
   inside socket appears as one outside address:port to every peer), when
   it is inside the range and free.
2. Choose the address: the only one, or a hash of source (and destination,
   unless --persistent) scaled into the range, so a client keeps its outside
   address across connections.
3. Keep the port when it is inside the range and free (a one-port range is
   taken as is).
4. Search the port range (nf_nat_l4proto_unique_tuple): from a random offset
   for SRC manips and random ones, from the range's start for DST; at most
   128 candidates, then halve the window and start again from a new random
   offset while it is 16 or more.  ICMP query identifiers are searched like
   ports, over 0-65535 without --to-ports.  Without --to-ports a DST manip
   never changes the port, and a SRC manip keeps the port's class: 1-511,
   600-1023 or 1024-65535.

Where the kernel lets a failed SRC search through to lose at confirm, here the
search says so and the router drops the packet under its own reason; the
conntrack statistics count it as the kernel's would (insert_failed, drop).
A DST manip never fails: as in the kernel it keeps the clashing tuple (the
port unchanged, or the last one tried), and the SRC manip after it (a null
binding at least) moves the source port, or confirm refuses the entry.
The kernel's last-resort eviction of a colliding TIME_WAIT entry
(nf_nat_used_tuple_harder) is not done: a port held by a closing
connection stays taken until that entry times out.
"""
import random

from tunrouter.conntrack.conn import (
    IPS_DST_NAT,
    IPS_DST_NAT_DONE,
    IPS_SRC_NAT,
    IPS_SRC_NAT_DONE,
    Conn,
)
from tunrouter.conntrack.tuple import Tuple, invert
from tunrouter.nat.jhash import nat_addr_hash
from tunrouter.nat.range import (
    DST,
    MAP_IPS,
    PERSISTENT,
    PROTO_SPECIFIED,
    RANDOM_ALL,
    SRC,
    NatRange,
)
from tunrouter.wire import ipv4

MAX_ATTEMPTS = 128              # NF_NAT_MAX_ATTEMPTS
_ICMP, _TCP, _UDP = ipv4.PROTO_ICMP, ipv4.PROTO_TCP, ipv4.PROTO_UDP
_PORTED = (_TCP, _UDP)
_DONE = (IPS_SRC_NAT_DONE, IPS_DST_NAT_DONE)
_NATTED = (IPS_SRC_NAT, IPS_DST_NAT)


def _addr(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _port_index(proto: int, manip: int) -> int:
    """Which tuple field the manip's "port" is: the ICMP id is field 3 both ways."""
    return 3 if proto == _ICMP or manip == SRC else 4


def l4_in_range(t: Tuple, manip: int, r: NatRange) -> bool:
    """The tuple's port (or ICMP id) lies in the range; protocols without one always do."""
    proto = t[2]
    if proto != _ICMP and proto not in _PORTED:
        return True
    return r.min_port <= t[_port_index(proto, manip)] <= r.max_port


def in_range(t: Tuple, r: NatRange) -> bool:
    """The source of t lies in the range (nf_in_range: used for SRC manips only)."""
    if r.flags & MAP_IPS and not r.min_addr <= _addr(t[0]) <= r.max_addr:
        return False
    return not r.flags & PROTO_SPECIFIED or l4_in_range(t, SRC, r)


class Binder:
    """Chooses bindings against one connection table.

    rng supplies the random search offsets (get_random_u16); tests pass a
    seeded random.Random.
    """

    def __init__(self, table, rng: random.Random | None = None):
        self.table = table
        self.rng = rng if rng is not None else random.SystemRandom()

    def setup(self, ct: Conn, r: NatRange, manip: int, now: float) -> bool:
        """Bind unconfirmed ct's SRC or DST to r; False when the range has no free tuple."""
        curr = invert(ct.reply)
        new = self.unique_tuple(curr, r, ct, manip, now)
        if new is None:
            self.table.nat_failed()
            return False
        if new != curr:
            ct.reply = self.table.intern(invert(new))
            ct.status |= _NATTED[manip]
        ct.status |= _DONE[manip]
        return True

    def null_binding(self, ct: Conn, manip: int, now: float) -> bool:
        """No NAT rule chose: bind to the current address, any port (nf_nat_alloc_null_binding).

        Only the port may then change, when the unchanged tuple would clash
        with an existing connection's.
        """
        if not self.used(invert(ct.reply), ct, now):
            # what unique_tuple() would return first for this range: the tuple as it is
            ct.status |= _DONE[manip]
            return True
        reply = ct.reply
        addr = _addr(reply[1] if manip == SRC else reply[0])
        return self.setup(ct, NatRange(MAP_IPS, addr, addr), manip, now)

    # -- get_unique_tuple ----------------------------------------------------

    def used(self, t: Tuple, ct: Conn, now: float) -> bool:
        """Would t's replies be mistaken for another connection's (nf_nat_used_tuple)?"""
        inverse = invert(t)
        return inverse is None or self.table.taken(inverse, ct, now)

    def unique_tuple(self, curr: Tuple, r: NatRange, ct: Conn, manip: int,
                     now: float) -> Tuple | None:
        if manip == SRC and not r.flags & RANDOM_ALL:
            if in_range(curr, r):
                if not self.used(curr, ct, now):
                    return curr
            else:
                mapped = self._appropriate_src(curr, r)
                if mapped is not None and not self.used(mapped, ct, now):
                    return mapped
        t = self._best_ip(curr, r, manip)
        if not r.flags & RANDOM_ALL:
            if r.flags & PROTO_SPECIFIED:
                if l4_in_range(t, manip, r):
                    if not self.used(t, ct, now):
                        return t
                    if r.min_port == r.max_port:
                        return self._clash(t, manip)    # the one port allowed is taken
            elif not self.used(t, ct, now):
                return t
        return self._unique_l4(t, r, manip, ct, now)

    def _appropriate_src(self, curr: Tuple, r: NatRange) -> Tuple | None:
        """The mapping another connection from the same source got, if inside r.

        The newest first, as the kernel's bysource chain (hlist_add_head) is walked.
        """
        src, dst, proto, sport, dport = curr
        for other in reversed(self.table.source_mappings(src, sport, proto)):
            rep = other.reply
            # invert(rep)'s source, with curr's destination
            mapped = (rep[1], dst, proto, rep[3] if proto == _ICMP else rep[4], dport)
            if in_range(mapped, r):
                return mapped
        return None

    def _best_ip(self, t: Tuple, r: NatRange, manip: int) -> Tuple:
        """Step 2 (find_best_ips_proto): the address, jhash2 of the source (seeded with the
        destination unless --persistent) scaled into the range, as the kernel chooses it."""
        if not r.flags & MAP_IPS:
            return t
        if r.min_addr == r.max_addr:
            chosen = r.min_addr
        else:
            # the kernel's hash, so a client gets the address Linux would give it
            j = nat_addr_hash(t[0], None if r.flags & PERSISTENT else t[1])
            chosen = r.min_addr + ((j * (r.max_addr - r.min_addr + 1)) >> 32)
        addr = chosen.to_bytes(4, "big")
        if manip == SRC:
            return (addr,) + t[1:]
        return (t[0], addr) + t[2:]

    @staticmethod
    def _clash(t: Tuple, manip: int) -> Tuple | None:
        """No free tuple: a SRC manip fails; a DST manip keeps t, taken, as the kernel does.

        The SRC manip that follows it may still make the connection unique.
        """
        return None if manip == SRC else t

    def _unique_l4(self, t: Tuple, r: NatRange, manip: int, ct: Conn,
                   now: float) -> Tuple | None:
        """Step 4 (nf_nat_l4proto_unique_tuple): search the port or id range for a free tuple."""
        proto = t[2]
        key = _port_index(proto, manip)
        if proto == _ICMP:
            if r.flags & PROTO_SPECIFIED:
                lo, size = r.min_port, r.max_port - r.min_port + 1
            else:
                lo, size = 0, 65536
        elif proto in _PORTED:
            if r.flags & PROTO_SPECIFIED:
                lo, size = r.min_port, r.max_port - r.min_port + 1
            elif manip == DST:
                return t                    # a DST manip without --to-ports keeps the port
            elif t[key] < 512:
                lo, size = 1, 511
            elif t[key] < 1024:
                lo, size = 600, 424
            else:
                lo, size = 1024, 64512
        else:
            return t if not self.used(t, ct, now) else self._clash(t, manip)
        if r.flags & RANDOM_ALL or manip != DST:
            off = self.rng.getrandbits(16)
        else:
            off = 0
        attempts = min(size, MAX_ATTEMPTS)
        head, tail = t[:key], t[key + 1:]
        while True:
            for i in range(attempts):
                # the kernel's offset is a u16: it wraps at 65536
                candidate = head + (lo + ((off + i) & 0xFFFF) % size,) + tail
                if not self.used(candidate, ct, now):
                    return candidate
            if attempts >= size or attempts < 16:
                return self._clash(candidate, manip)
            attempts //= 2
            off = self.rng.getrandbits(16)
