"""Drop reasons and the counters the driver and `tunrouter stats` read."""
import enum


class Drop(enum.IntEnum):
    """Why a packet was dropped.  One counter each; printed by label."""
    SHORT = enum.auto()            # shorter than its headers claim to be
    BAD_VERSION = enum.auto()      # IP version field is not 4
    BAD_HLEN = enum.auto()         # IHL below 5 or beyond the packet
    BAD_LEN = enum.auto()          # total length beyond the captured length or below IHL
    BAD_CHECKSUM = enum.auto()     # IPv4 header checksum
    NOT_IPV4 = enum.auto()         # another network protocol (IPv6, other EtherTypes)
    OTHER_HOST = enum.auto()       # Ethernet frame addressed to another station
    L2_BROADCAST = enum.auto()     # IP in a link-layer broadcast/multicast frame: never forwarded
    BAD_ARP = enum.auto()          # ARP we cannot read or that is not for us
    MARTIAN = enum.auto()          # source or destination no router may forward (RFC 1812 §5.3.7)
    BROADCAST = enum.auto()        # to a broadcast or multicast address
    TTL_EXCEEDED = enum.auto()
    NO_ROUTE = enum.auto()
    FRAG_NEEDED = enum.auto()      # larger than the egress MTU with DF set
    FRAG_NO_MEM = enum.auto()      # reassembly memory above ipfrag_high_thresh: fragment refused
    FRAG_DUP = enum.auto()         # a fragment inside data already held (harmless duplicate)
    FRAG_OVERLAP = enum.auto()     # overlaps data already held: the whole datagram is dropped
    FRAG_CORRUPT = enum.auto()     # contradicts the datagram's known end: the datagram is dropped
    FRAG_EMPTY = enum.auto()       # a fragment carrying no data
    FRAG_OVERSIZE = enum.auto()    # fragments add up to more than 65,535 bytes (ping of death)
    FRAG_ECN = enum.auto()         # Not-ECT fragments mixed with ECN-capable ones (RFC 3168 §5.3)
    CONNTRACK = enum.auto()        # conntrack refused it: table full, or a lost insert race
    NEIGH_FAILED = enum.auto()     # ARP resolution of the next hop timed out
    NEIGH_QUEUE_FULL = enum.auto() # too many packets waiting for one neighbour
    RULE = enum.auto()             # a rule or a chain policy said DROP
    REJECT = enum.auto()           # a REJECT rule: dropped, answered with an ICMP error or RST
    NAT_EXHAUSTED = enum.auto()    # NAT found no free address/port in the rule's range
    NAT_OIF_CHANGED = enum.auto()  # a masqueraded connection left by another port: killed
    NAT_REDIRECT = enum.auto()     # an ICMP redirect about a translated connection
    HELPER = enum.auto()           # a conntrack helper dropped it (partial command, no expectation)
    HELPER_FAULT = enum.auto()     # its helper faulted and the fault verdict is drop
    BAD_OFFLOAD = enum.auto()      # a virtio-net header the router cannot honour (core.offload)
    WRITE_FAILED = enum.auto()     # the device would not take the frame
    INTERNAL = enum.auto()         # an exception escaped process(): a bug

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


class Counters:
    """Plain integers and lists indexed by port or by Drop: no locks, no dict lookups.

    rx/tx count frames as they cross a device; forwarded, local and the drop
    reasons partition what was received.
    """

    def __init__(self, nports: int):
        self.rx_packets = [0] * nports
        self.rx_bytes = [0] * nports
        self.tx_packets = [0] * nports
        self.tx_bytes = [0] * nports
        self.drops = [0] * (max(Drop) + 1)
        self.forwarded = 0
        self.local = 0                 # addressed to the router and answered or consumed
        self.arp = 0                   # ARP frames received and handled
        self.icmp_sent = 0             # ICMP messages the router originated
        self.icmp_ratelimited = 0      # ICMP errors suppressed by the rate limit
        self.fragments_out = 0         # fragments created on egress

    def snapshot(self, port_names: list[str]) -> dict:
        """A JSON-ready copy for the control socket."""
        return {
            "ports": {
                name: {"rx_packets": self.rx_packets[i], "rx_bytes": self.rx_bytes[i],
                       "tx_packets": self.tx_packets[i], "tx_bytes": self.tx_bytes[i]}
                for i, name in enumerate(port_names)
            },
            "drops": {r.label: self.drops[r] for r in Drop},
            "forwarded": self.forwarded,
            "local": self.local,
            "arp": self.arp,
            "icmp_sent": self.icmp_sent,
            "icmp_ratelimited": self.icmp_ratelimited,
            "fragments_out": self.fragments_out,
        }
