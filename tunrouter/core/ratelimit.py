"""Token buckets with the caller's clock (Snabb's RateLimiter; the kernel's xrlim)."""
from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    """rate tokens per second, at most burst tokens.  Pure: the caller supplies now."""
    rate: float
    burst: float
    tokens: float
    last: float = 0.0

    def allow(self, now: float, cost: float = 1.0) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if cost <= self.tokens:
            self.tokens -= cost
            return True
        return False


class IcmpLimiter:
    """The kernel's two ICMP limits for error messages (net/ipv4/icmp.c).

    Global: icmp_msgs_per_sec = 1000 with icmp_msgs_burst = 50.  Per destination
    host: icmp_ratelimit = 1 s with a burst of XRLIM_BURST_FACTOR = 6
    (inet_peer_xrlim_allow).  Fragmentation-needed is never limited, so path
    MTU discovery keeps working (icmpv4_mask_allow).  Per-host buckets are
    kept for at most MAX_PEERS destinations; the oldest go first.
    """
    PER_SEC = 1000
    BURST = 50
    PEER_INTERVAL = 1.0
    PEER_BURST = 6
    MAX_PEERS = 4096

    def __init__(self):
        self._global = TokenBucket(self.PER_SEC, self.BURST, self.BURST)
        self._peers: dict[bytes, TokenBucket] = {}

    def allow(self, dst: bytes, now: float) -> bool:
        peer = self._peers.get(dst)
        if peer is None:
            if len(self._peers) >= self.MAX_PEERS:
                del self._peers[next(iter(self._peers))]
            peer = self._peers[dst] = TokenBucket(
                1 / self.PEER_INTERVAL, self.PEER_BURST, self.PEER_BURST, now)
        if not peer.allow(now):
            return False
        return self._global.allow(now)
