"""IPv4 fragmentation (RFC 791 §3.2, "An Example Fragmentation Procedure").

Only options with the copied flag set travel in the second and later
fragments (RFC 791 §3.1; kernel ip_options_fragment()).
"""
from tunrouter.wire import ipv4
from tunrouter.wire.checksum import csum

_EOL, _NOP = 0, 1


def copied_options(options: bytes | memoryview) -> bytes:
    """The options a non-first fragment repeats, padded to a 4-byte multiple."""
    out = bytearray()
    i, n = 0, len(options)
    while i < n:
        kind = options[i]
        if kind == _EOL:
            break
        if kind == _NOP:
            i += 1
            continue
        if i + 1 >= n or options[i + 1] < 2 or i + options[i + 1] > n:
            break                          # malformed: stop copying, as the kernel does
        length = options[i + 1]
        if kind & 0x80:
            out += options[i:i + length]
        i += length
    out += b"\0" * (-len(out) % 4)
    return bytes(out)


def fragment(packet: bytes | memoryview, mtu: int) -> list[bytes]:
    """Split an IPv4 packet (DF clear) into fragments of at most mtu bytes.

    Works on a packet that is itself a fragment: offsets continue from its
    own, and only the last piece keeps its MF flag.  A DF flag on the packet
    (a datagram reassembled from DF fragments) stays on every piece, as
    ip_do_fragment() does for IPSKB_FRAG_PMTU.
    """
    hlen = (packet[0] & 0x0F) << 2
    frag_word = (packet[ipv4.FLAGS_FRAG] << 8) | packet[ipv4.FLAGS_FRAG + 1]
    base_off = (frag_word & ipv4.OFFSET_MASK) * 8
    last_mf = frag_word & ipv4.FLAG_MF
    df = frag_word & ipv4.FLAG_DF
    first_head = bytes(packet[:hlen])
    later_head = first_head[:ipv4.MIN_HLEN] + copied_options(packet[ipv4.MIN_HLEN:hlen])
    payload = packet[hlen:]
    pieces = []
    pos = 0
    while pos < len(payload):
        head = first_head if pos == 0 else later_head
        room = (mtu - len(head)) & ~7
        if room <= 0:
            raise ValueError(f"MTU {mtu} leaves no room for data after a {len(head)}-byte header")
        chunk = payload[pos:pos + room]
        more = pos + len(chunk) < len(payload)
        word = ((base_off + pos) >> 3) | (ipv4.FLAG_MF if more or last_mf else 0) | df
        h = bytearray(head)
        h[0] = 0x40 | (len(head) >> 2)
        h[ipv4.TOTAL_LEN:ipv4.TOTAL_LEN + 2] = (len(head) + len(chunk)).to_bytes(2, "big")
        h[ipv4.FLAGS_FRAG:ipv4.FLAGS_FRAG + 2] = word.to_bytes(2, "big")
        h[ipv4.CHECKSUM:ipv4.CHECKSUM + 2] = b"\0\0"
        h[ipv4.CHECKSUM:ipv4.CHECKSUM + 2] = csum(h).to_bytes(2, "big")
        pieces.append(bytes(h) + bytes(chunk))
        pos += len(chunk)
    return pieces
