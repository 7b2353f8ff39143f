"""TCP sequence adjustment after a payload changed length (kernel: nf_conntrack_seqadj.c).

Per direction: [correction_pos, offset_before, offset_after].  Segments after
the correction point have their sequence number moved by offset_after, the
others (the mangled segment itself included: after() is strict) by
offset_before; acknowledgements (and SACK blocks) going the other way are
moved back by the same offsets, so each end sees one consistent byte
stream.  Only one correction point per direction is kept, as the kernel
does: a retransmission of the mangled segment does not add again.
"""
import struct

_U32 = struct.Struct("!I")
_u32, _p32 = _U32.unpack_from, _U32.pack_into
_U16 = struct.Struct("!H")
_u16, _p16 = _U16.unpack_from, _U16.pack_into
_SACK, _NOP, _EOL = 5, 1, 0


def after(a: int, b: int) -> bool:
    return 0 < ((a - b) & 0xFFFFFFFF) < 0x80000000


def seqadj_set(help, direction: int, seq: int, off: int) -> None:
    """nf_ct_seqadj_set(): the segment at seq grew (or shrank) by off bytes."""
    if not off:
        return
    if help.seqadj is None:
        help.seqadj = [[0, 0, 0], [0, 0, 0]]
    this = help.seqadj[direction]
    if this[1] == this[2] or after(seq, this[0]):
        this[0] = seq
        this[1] = this[2]
        this[2] += off


def _csum_update(buf, c: int, old: int, new: int) -> None:
    """The TCP checksum at c for one 32-bit word changed from old to new (RFC 1624);
    c < 0: an offloaded checksum, nothing to update."""
    if c < 0:
        return
    s = ((~_u16(buf, c)[0] & 0xFFFF) + (new >> 16) + (new & 0xFFFF)
         - (old >> 16) - (old & 0xFFFF) + 4 * 0xFFFF)
    s = (s & 0xFFFF) + (s >> 16)
    _p16(buf, c, ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF)


def seq_adjust(buf, l4: int, help, direction: int, partial: bool = False) -> None:
    """nf_ct_seq_adjust(): move this TCP segment's seq, ack and SACK blocks.

    partial: the checksum is offloaded (its field holds the pseudo-header sum
    only), so the words changed here do not touch it.
    """
    this, other = help.seqadj[direction], help.seqadj[1 - direction]
    check = -1 if partial else l4 + 16
    seq = _u32(buf, l4 + 4)[0]
    new = (seq + (this[2] if after(seq, this[0]) else this[1])) & 0xFFFFFFFF
    if new != seq:
        _p32(buf, l4 + 4, new)
        _csum_update(buf, check, seq, new)
    if not buf[l4 + 13] & 0x10:                   # no ACK
        return
    ack = _u32(buf, l4 + 8)[0]
    back = other[2] if after((ack - other[1]) & 0xFFFFFFFF, other[0]) else other[1]
    new = (ack - back) & 0xFFFFFFFF
    if new != ack:
        _p32(buf, l4 + 8, new)
        _csum_update(buf, check, ack, new)
    _sack_adjust(buf, l4, other, check)


def _sack_adjust(buf, l4: int, other: list, check: int) -> None:
    """SACK blocks acknowledge the other direction's bytes: move them back like ack."""
    end = l4 + ((buf[l4 + 12] >> 4) << 2)
    i = l4 + 20
    while i < end:
        kind = buf[i]
        if kind == _EOL:
            return
        if kind == _NOP:
            i += 1
            continue
        if i + 1 >= end or buf[i + 1] < 2:
            return
        size = buf[i + 1]
        if kind == _SACK and size >= 10 and (size - 2) % 8 == 0 and i + size <= end:
            for edge in range(i + 2, i + size, 4):
                old = _u32(buf, edge)[0]
                back = other[2] if after((old - other[1]) & 0xFFFFFFFF, other[0]) else other[1]
                new = (old - back) & 0xFFFFFFFF
                if new != old:
                    _p32(buf, edge, new)
                    _csum_update(buf, check, old, new)
        i += size
