"""The virtio-net header a TUN or TAP device opened with IFF_VNET_HDR puts before each frame.

struct virtio_net_hdr (include/uapi/linux/virtio_net.h), 10 bytes in the
host's byte order (legacy virtio, no TUNSETVNETLE): flags, gso_type,
hdr_len, gso_size, csum_start, csum_offset.  csum_start counts from the
frame after the header: the IPv4 header on a TUN device, the Ethernet
header on a TAP device.
"""
import struct

HEADER = struct.Struct("=BBHHHH")
HLEN = HEADER.size
NONE = bytes(HLEN)                # a packet complete as it is: no offload asked or done

# flags
NEEDS_CSUM = 0x01                 # the L4 checksum field holds only the pseudo-header sum
DATA_VALID = 0x02                 # the sender verified the checksum already
# gso_type
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_UDP_L4 = 5                    # UDP segmentation (USO)
GSO_ECN = 0x80                    # the TCP super-segment carries CWR: only its first segment keeps it

# TUNSETOFFLOAD (_IOW('T', 208, unsigned int)) and what it may enable
TUNSETOFFLOAD = 0x400454D0
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08
TUN_F_USO4 = 0x20
TUN_F_USO6 = 0x40

unpack = HEADER.unpack_from


def header(partial: bool, csum_start: int, csum_offset: int, gso_type: int = GSO_NONE,
           gso_size: int = 0, hdr_len: int = 0) -> bytes:
    """The header for a packet whose checksum is partial (or not) and that may be a super-segment."""
    if not partial:
        return NONE
    return HEADER.pack(NEEDS_CSUM, gso_type, hdr_len, gso_size, csum_start, csum_offset)
