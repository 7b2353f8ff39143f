"""What the core knows of a router port: its link kind and the router's address on it."""
import enum
from dataclasses import dataclass, field


class Kind(enum.Enum):
    TUN = "tun"    # L3: frames are bare IPv4 packets
    TAP = "tap"    # L2: Ethernet frames, ARP


@dataclass(frozen=True, slots=True)
class PortSpec:
    """One router port.  Addresses are 4 raw bytes; ints are the same as big-endian."""
    index: int
    name: str
    kind: Kind
    address: bytes
    prefixlen: int
    mtu: int = 1500
    mac: bytes = b""                       # TAP only: the router's MAC on this link
    offload: bool = False                  # frames carry a virtio-net header (core.offload)
    network: int = field(init=False)
    broadcast: bytes = field(init=False)

    def __post_init__(self):
        mask = (0xFFFFFFFF << (32 - self.prefixlen)) & 0xFFFFFFFF
        addr = int.from_bytes(self.address, "big")
        object.__setattr__(self, "network", addr & mask)
        # /31 and /32 links have no broadcast address (RFC 3021).
        bcast = (addr | ~mask & 0xFFFFFFFF) if self.prefixlen < 31 else 0xFFFFFFFF
        object.__setattr__(self, "broadcast", bcast.to_bytes(4, "big"))
