"""TCP connection tracking, as a middlebox sees it.

Mirrors net/netfilter/nf_conntrack_proto_tcp.c of the reference kernel (6.18;
read from the 6.x trees cited in CONNTRACK-REFERENCE.md §1, whose table,
tcp_in_window and nf_conntrack_tcp_packet are identical): the
tcp_conntracks[dir][index][state] table, cell by cell with the kernel's
reasons, the timeouts table, tcp_new, the per-packet order of
nf_conntrack_tcp_packet and the window checks of tcp_in_window.

We are the man in the middle: states describe what we have *seen*, not what an
endpoint is in, so names are netfilter's (SYN_RECV, FIN_WAIT = "one FIN seen",
CLOSE_WAIT = "that FIN acknowledged", LAST_ACK = "FINs seen both ways",
SYN_SENT2 = simultaneous open), not RFC 9293's.

Not mirrored: NAT sequence adjustment (nf_ct_seq_offset; comes with the NAT
helpers), the SYN proxy keep-alive exception and per-rule timeout policies
(`-j CT --timeout`), which tunrouter does not have.
"""
import array
import enum
import struct

from tunrouter.conntrack.conn import IPS_ASSURED, IPS_SEEN_REPLY, Conn
from tunrouter.conntrack.proto import KILL, REPEAT
from tunrouter.conntrack.tuple import Tuple
from tunrouter.wire import tcp

MINS, DAYS = 60, 24 * 60 * 60
FIN, SYN, RST, ACK = tcp.FIN, tcp.SYN, tcp.RST, tcp.ACK


class TcpState(enum.IntEnum):
    """kernel: enum tcp_conntrack; names as tcp_conntrack_names[] prints them."""
    NONE = 0
    SYN_SENT = 1
    SYN_RECV = 2
    ESTABLISHED = 3
    FIN_WAIT = 4
    CLOSE_WAIT = 5
    LAST_ACK = 6
    TIME_WAIT = 7
    CLOSE = 8
    SYN_SENT2 = 9            # kernel: TCP_CONNTRACK_SYN_SENT2 (= TCP_CONNTRACK_LISTEN)
    # Pseudo-states, never stored on a connection.  Same numbers as the kernel.
    INVALID = 10             # TCP_CONNTRACK_MAX: a table cell meaning "invalid packet"
    IGNORE = 11              # a table cell meaning "let it through, change nothing"
    RETRANS = 12             # timeout slots only: too many retransmissions
    UNACK = 13               # ... and data not yet acknowledged


class Seg(enum.IntEnum):
    """Segment class, the table's middle index (kernel: enum tcp_bit_set)."""
    SYN = 0
    SYNACK = 1
    FIN = 2
    ACK = 3
    RST = 4
    NONE = 5


def seg_index(flags: int) -> Seg:
    """Classify a segment by its flags, first match wins (kernel: get_conntrack_index)."""
    if flags & RST:
        return Seg.RST
    if flags & SYN:
        return Seg.SYNACK if flags & ACK else Seg.SYN
    if flags & FIN:
        return Seg.FIN
    if flags & ACK:
        return Seg.ACK
    return Seg.NONE


S = TcpState
# The kernel's aliases.  Plain ints in the table and in comparisons (exact ints
# compare fastest); ct.state itself holds the TcpState member (_STATES).
sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2, sIV, sIG = range(12)

# fmt: off
TCP_CONNTRACKS = (
    (   # ORIGINAL
        #  sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        (sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2),   # syn
        #   sNO -> sSS  initialize a new connection
        #   sSS -> sSS  retransmitted SYN
        #   sS2 -> sS2  late retransmitted SYN
        #   sSR -> sIG
        #   sES -> sIG  error: SYNs in window outside the SYN_SENT state are
        #               errors; the receiver will reply with RST and close the
        #               connection, or we are not in sync and hold a dead one
        #   sFW -> sIG
        #   sCW -> sIG
        #   sLA -> sIG
        #   sTW -> sSS  reopened connection (RFC 1122)
        #   sCL -> sSS
        (sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR),   # synack
        #   sNO -> sIV  too late and no reason to do anything
        #   sSS -> sIV  client can't send SYN and then SYN/ACK
        #   sS2 -> sSR  SYN/ACK sent to SYN2 in simultaneous open
        #   sSR -> sSR  late retransmitted SYN/ACK in simultaneous open
        #   sES -> sIV  invalid SYN/ACK packets sent by the client
        #   sFW -> sIV
        #   sCW -> sIV
        #   sLA -> sIV
        #   sTW -> sIV
        #   sCL -> sIV
        (sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV),   # fin
        #   sNO -> sIV  too late and no reason to do anything
        #   sSS -> sIV  client might not send FIN in this state: we enforce
        #               waiting for a SYN/ACK reply first
        #   sS2 -> sIV
        #   sSR -> sFW  close started
        #   sES -> sFW
        #   sFW -> sLA  FIN seen in both directions, waiting for the last ACK
        #               (might be a retransmitted FIN as well)
        #   sCW -> sLA
        #   sLA -> sLA  retransmitted FIN: remain in the same state
        #   sTW -> sTW
        #   sCL -> sCL
        (sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV),   # ack
        #   sNO -> sES  assumed (picked up mid-stream; only with tcp_loose)
        #   sSS -> sIV  ACK is invalid: we haven't seen a SYN/ACK yet
        #   sS2 -> sIV
        #   sSR -> sES  established state is reached
        #   sES -> sES  :-)
        #   sFW -> sCW  normal close request answered by ACK
        #   sCW -> sCW
        #   sLA -> sTW  last ACK detected (RFC 5961 challenged)
        #   sTW -> sTW  retransmitted last ACK: remain in the same state
        #   sCL -> sCL
        (sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL),   # rst
        #   sNO -> sIV  an RST cannot start a connection
        #   any -> sCL  (whether it is believed is decided by the RST checks
        #               and the window check in packet())
        (sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV),   # none
        #   no SYN, FIN, ACK or RST: never valid
    ),
    (   # REPLY
        #  sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        (sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2),   # syn
        #   sNO -> sIV  never reached
        #   sSS -> sS2  simultaneous open
        #   sS2 -> sS2  retransmitted simultaneous SYN
        #   sSR -> sIV  invalid SYN packets sent by the server
        #   sES -> sIV
        #   sFW -> sIV
        #   sCW -> sIV
        #   sLA -> sIV
        #   sTW -> sSS  reopened connection, but server may have switched role
        #   sCL -> sIV
        (sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR),   # synack
        #   sNO -> sIV  never reached
        #   sSS -> sSR  standard open
        #   sS2 -> sSR  simultaneous open
        #   sSR -> sIG  retransmitted SYN/ACK, ignore it
        #   sES -> sIG  late retransmitted SYN/ACK?
        #   sFW -> sIG  might be SYN/ACK answering ignored SYN
        #   sCW -> sIG
        #   sLA -> sIG
        #   sTW -> sIG
        #   sCL -> sIG
        (sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV),   # fin
        #   sNO -> sIV  never reached
        #   sSS -> sIV  server might not send FIN in this state
        #   sS2 -> sIV
        #   sSR -> sFW  close started
        #   sES -> sFW
        #   sFW -> sLA  FIN seen in both directions
        #   sCW -> sLA
        #   sLA -> sLA  retransmitted FIN
        #   sTW -> sTW
        #   sCL -> sCL
        (sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG),   # ack
        #   sNO -> sIV  never reached
        #   sSS -> sIG  might be a half-open connection
        #   sS2 -> sIG
        #   sSR -> sSR  might answer late resent SYN
        #   sES -> sES  :-)
        #   sFW -> sCW  normal close request answered by ACK
        #   sCW -> sCW
        #   sLA -> sTW  last ACK detected (RFC 5961 challenged)
        #   sTW -> sTW  retransmitted last ACK
        #   sCL -> sCL
        (sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL),   # rst
        #   as in ORIGINAL
        (sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV),   # none
    ),
)
# fmt: on

TCP_TIMEOUTS = {                 # seconds; kernel tcp_timeouts[]
    S.SYN_SENT:    2 * MINS,
    S.SYN_RECV:    60,
    S.ESTABLISHED: 5 * DAYS,
    S.FIN_WAIT:    2 * MINS,
    S.CLOSE_WAIT:  60,
    S.LAST_ACK:    30,
    S.TIME_WAIT:   2 * MINS,
    S.CLOSE:       10,
    S.SYN_SENT2:   2 * MINS,
    # RFC 1122 says the R2 limit should be at least 100 seconds; Linux uses
    # 15 packets as limit, which corresponds to ~13-30 min depending on RTO.
    S.RETRANS:     5 * MINS,
    S.UNACK:       5 * MINS,
}

# Per-direction flags (kernel: IP_CT_TCP_FLAG_*, include/uapi/.../nf_conntrack_tcp.h)
WINDOW_SCALE = 0x01          # the SYN carried a window scale option
SACK_PERM = 0x02             # the SYN carried SACK-permitted
CLOSE_INIT = 0x04            # this direction sent the first FIN
BE_LIBERAL = 0x08            # skip window checks for this direction
DATA_UNACKNOWLEDGED = 0x10   # sent data the peer has not acknowledged yet
MAXACK_SET = 0x20            # td_maxack holds a value
# last_flags only:
EXP_CHALLENGE_ACK = 0x40     # an ignored SYN in LAST_ACK may draw an RFC 5961 challenge ACK
SIMULTANEOUS_OPEN = 0x80

MAX_WSCALE = 14              # RFC 7323 §2.3 (kernel: TCP_MAX_WSCALE)
MAXACKWINCONST = 66000       # kernel: MAXACKWINDOW(sender) = max(td_maxwin, this)

# A segment's flags decide the valid combination and the table row; both are
# looked up per packet, so precompute them for every flags value.
# kernel tcp_valid_flags[]: PSH, ECE and CWR are always valid, then exactly these.
_VALID = {tcp.SYN, tcp.SYN | tcp.URG, tcp.SYN | tcp.ACK, tcp.RST, tcp.RST | tcp.ACK,
          tcp.FIN | tcp.ACK, tcp.FIN | tcp.ACK | tcp.URG, tcp.ACK, tcp.ACK | tcp.URG}
VALID_FLAGS = tuple((f & ~(tcp.PSH | tcp.ECE | tcp.CWR)) in _VALID for f in range(256))
SEG_INDEX = tuple(int(seg_index(f)) for f in range(256))
# SYN and FIN each occupy one sequence number (RFC 9293 §3.4).
SYN_FIN_LEN = tuple(((f >> 1) & 1) + (f & 1) for f in range(256))
_ROW = tuple(tuple(TCP_CONNTRACKS[d][SEG_INDEX[f]] for f in range(256)) for d in (0, 1))

# Sequence arithmetic modulo 2**32 (kernel before()/after()): (s32)(a - b) < 0
# exactly when (a - b) & M >= H.  before(a, b) is written `(a - b) & M >= H`,
# after(a, b) as `(b - a) & M >= H`.  Inline: this runs on every segment.
M = 0xFFFFFFFF
H = 0x80000000

_IGNORE = 0                  # tcp_in_window verdicts (kernel: enum nf_ct_tcp_action)
_INVALID = 1
_CHECK_WINDOW = 1            # _rst_checks() result bits
_KEEP_STATE = 2

_SYN, _SYNACK, _FIN, _ACK, _RST, _NONE = range(6)   # Seg, as plain ints
_ORIGINAL, _REPLY = 0, 1
_CLOSING = frozenset({sFW, sCW, sLA, sTW, sCL})      # kernel: tcp_can_early_drop()
# Cells with a special case in nf_conntrack_tcp_packet; the others go straight
# to the window check.
_SPECIAL = frozenset({sSS, sIG, sIV, sTW, sS2, sSR, sCL})
_RETRANS, _UNACK = int(S.RETRANS), int(S.UNACK)
_STATES = tuple(TcpState)    # ct.state holds the TcpState member: ct.state.name works
_TS_ONLY = 0x0101080A        # NOP, NOP, TIMESTAMP, length 10: tcp_sack()'s fast path
_WORD = struct.Struct("!I").unpack_from


# The window state (kernel: struct ip_ct_tcp_state seen[2], and the 32-bit
# last_* fields of struct ip_ct_tcp) lives in one array of 32-bit words per
# connection: as slots, its sequence numbers would be a dozen int objects of
# 28 bytes each, where the array holds them in 4: an established entry takes
# 613 bytes instead of 977 (bench/conntrack_table.py, 1 M entries).  Reading
# a word makes an int, about 25 ns against 8 for a slot: some 0.4 µs more
# per segment in track().  Direction d's words start at d * SEEN:
END = 0                      # td_end     highest seq + len sent
MAXEND = 1                   # td_maxend  highest ack + window the peer advertised: the right edge
MAXWIN = 2                   # td_maxwin  largest window seen (scaled)
MAXACK = 3                   # td_maxack  highest ack sent (valid when MAXACK_SET)
SCALE = 4                    # td_scale   window scale shift of this direction
FLAGS = 5                    # flags      the per-direction flags above
SEEN = 6
# The last packet's words, for retransmission counting and the ignore/resync logic:
LAST_SEQ, LAST_ACK, LAST_END, LAST_WIN = range(2 * SEEN, 2 * SEEN + 4)
_ZERO_WORDS = array.array("I", bytes(4 * (LAST_WIN + 1)))


class TcpConn(Conn):
    """A TCP connection (kernel: struct ip_ct_tcp in nf_conn.proto).

    state      the TcpState
    w          the window words above (seen[0], seen[1], last seq, ack, end, raw window)
    last_*     the rest of the last packet: its class (Seg) and direction, and
               the window scale and flags an ignored SYN carried
    retrans    how many times the same pure ACK was seen again
    """
    __slots__ = ("last_dir", "last_flags", "last_index", "last_wscale", "retrans", "state", "w")

    def __init__(self, orig: Tuple, reply: Tuple):
        super().__init__(orig, reply)
        self.state = S.NONE
        self.w = _ZERO_WORDS[:]
        self.last_index = _NONE
        self.last_dir = 0
        self.last_wscale = 0
        self.last_flags = 0
        self.retrans = 0


def _reset(w: array.array, d: int) -> None:
    """Forget what was seen of the direction whose words start at d
    (kernel: nf_ct_tcp_state_reset()); BE_LIBERAL survives."""
    w[d + END] = w[d + MAXEND] = w[d + MAXWIN] = w[d + MAXACK] = w[d + SCALE] = 0
    w[d + FLAGS] &= BE_LIBERAL


def parse_options(buf: memoryview, off: int, length: int) -> tuple[int, int]:
    """Window scale and SACK-permitted from a SYN's options (kernel: tcp_options).

    Returns (WINDOW_SCALE | SACK_PERM bits found, window scale).  Stops, as
    the kernel does, at EOL, at a "silly" length below 2 and at an option
    running past the header.
    """
    found = scale = 0
    end = off + length
    while off < end:
        kind = buf[off]
        if kind == tcp.OPT_EOL:
            break
        if kind == tcp.OPT_NOP:
            off += 1
            continue
        if off + 1 >= end:
            break
        size = buf[off + 1]
        if size < 2 or off + size > end:
            break
        if kind == tcp.OPT_SACK_PERM and size == 2:
            found |= SACK_PERM
        elif kind == tcp.OPT_WSCALE and size == 3:
            scale = min(buf[off + 2], MAX_WSCALE)
            found |= WINDOW_SCALE
        off += size
    return found, scale


def highest_sack(buf: memoryview, off: int, length: int, sack: int) -> int:
    """The highest right edge among SACK blocks, if above sack (kernel: tcp_sack).

    The kernel's fast path (timestamps alone: nothing to find) is tested by
    the caller, in_window(), to save the call on most segments.
    """
    end = off + length
    while off < end:
        kind = buf[off]
        if kind == tcp.OPT_EOL:
            break
        if kind == tcp.OPT_NOP:
            off += 1
            continue
        if off + 1 >= end:
            break
        size = buf[off + 1]
        if size < 2 or off + size > end:
            break
        if kind == tcp.OPT_SACK and size >= 10 and (size - 2) % 8 == 0:
            for i in range(off + 6, off + size, 8):     # the right edge of each block
                edge = int.from_bytes(buf[i:i + 4], "big")
                if (sack - edge) & M >= H:              # after(edge, sack)
                    sack = edge
            break
        off += size
    return sack


def _init_sender(w: array.array, snd: int, rcv: int, end: int, win: int,
                 buf: memoryview, opt_off: int, opt_len: int, direction: int) -> None:
    """A SYN/ACK answering a SYN, or a reply SYN in simultaneous open (kernel: tcp_init_sender).

    snd, rcv: where the sender's and the receiver's words start in w.
    """
    w[snd + END] = w[snd + MAXEND] = end
    w[snd + MAXWIN] = win or 1
    if opt_len:
        found, scale = parse_options(buf, opt_off, opt_len)
        w[snd + SCALE] = scale
        w[snd + FLAGS] = (w[snd + FLAGS] & BE_LIBERAL) | found
    # RFC 7323 §2.2: both sides must send the option to enable scaling either way.
    if direction == _REPLY and not (w[snd + FLAGS] & WINDOW_SCALE and w[rcv + FLAGS] & WINDOW_SCALE):
        w[snd + SCALE] = w[rcv + SCALE] = 0


def new(orig: Tuple, reply: Tuple, seq: int, flags: int, win: int, datalen: int,
        buf: memoryview, opt_off: int, opt_len: int, loose: int) -> TcpConn | str:
    """The entry for a first packet, or why it cannot start one (kernel: tcp_new).

    Only a SYN (-> SYN_SENT) starts a connection, or, with tcp_loose, an ACK
    picked up mid-stream (-> ESTABLISHED), whose two directions are then
    tracked SACK-permitted and liberally: its history is lost to us.
    nf_conntrack_tcp_packet() runs on it next, as for any packet.
    """
    index = SEG_INDEX[flags]
    new_state = TCP_CONNTRACKS[_ORIGINAL][index][sNO]
    if new_state >= sIV:
        return "invalid new"
    if new_state != sSS and not loose:
        return "invalid new (tcp_loose is off: no mid-stream pick-up)"
    ct = TcpConn(orig, reply)
    w = ct.w                             # the sender is ORIGINAL: its words start at 0
    end = (seq + datalen + SYN_FIN_LEN[flags]) & M
    w[END] = end
    w[MAXWIN] = win or 1
    if new_state == sSS:
        w[MAXEND] = end
        if opt_len:
            w[FLAGS], w[SCALE] = parse_options(buf, opt_off, opt_len)
    else:
        w[MAXEND] = (end + w[MAXWIN]) & M
        w[FLAGS] = w[SEEN + FLAGS] = SACK_PERM | BE_LIBERAL
    return ct


def packet(ct: TcpConn, direction: int, seq: int, ack: int, flags: int, win: int,
           datalen: int, buf: memoryview, opt_off: int, opt_len: int,
           now: float, s) -> str | None:
    """Run one valid segment through ct (kernel: nf_conntrack_tcp_packet).

    The order is the kernel's: table lookup; the special cells (reopen,
    ignore and resync, invalid, challenge ACK, simultaneous open, RST); the
    window check; then state, timeout and ASSURED.  s is the Settings.
    Returns None, an INVALID reason, KILL or REPEAT (see proto/__init__.py).
    """
    old = ct.state
    index = SEG_INDEX[flags]
    new_state = _ROW[direction][flags][old]
    end = (seq + datalen + SYN_FIN_LEN[flags]) & M
    check_window = True
    if new_state in _SPECIAL:
        r = _special(ct, direction, index, old, new_state, seq, ack, end, win, buf, opt_off, opt_len, s)
        if r.__class__ is not tuple:
            return r                     # REPEAT, invalid, or accepted without change (None)
        old, new_state, check_window = r

    if check_window:
        verdict = in_window(ct, direction, index, seq, ack, win, end, flags,
                            buf, opt_off, opt_len, s)
        if verdict is not None:
            action, reason = verdict
            if action == _IGNORE:
                return None              # accepted; nothing updated
            _handle_invalid(ct, direction, index, now, s)
            return reason

    # From now on we have got in-window packets.
    ct.last_index = index
    ct.last_dir = direction
    ct.state = _STATES[new_state]
    if old != new_state and new_state == sFW:
        ct.w[direction * SEEN + FLAGS] |= CLOSE_INIT

    t = s.tcp_timeouts
    timeout = t[new_state]
    if ct.retrans >= s.tcp_max_retrans and timeout > t[_RETRANS]:
        timeout = t[_RETRANS]
    elif index == _RST:
        timeout = t[sCL]
    elif (ct.w[FLAGS] | ct.w[SEEN + FLAGS]) & DATA_UNACKNOWLEDGED and timeout > t[_UNACK]:
        timeout = t[_UNACK]
    elif ct.w[LAST_WIN] == 0 and timeout > t[_RETRANS]:
        timeout = t[_RETRANS]

    status = ct.status
    if not status & IPS_SEEN_REPLY:
        if flags & RST:
            # If the only reply is a RST, this is not an established
            # connection: a fairly common problem case, so delete the entry
            # immediately.  --RR
            return KILL
        if index == _SYN and old == sSS:
            # Do not renew the timeout on a SYN retransmit, else port reuse by
            # a client or NAT middlebox can keep the entry alive indefinitely.
            return None
        if new_state == sES and timeout > t[_UNACK]:
            timeout = t[_UNACK]          # picked up mid-stream: no 5-day timeout
    elif not status & IPS_ASSURED and (old == sSR or old == sES) and new_state == sES:
        # A valid ACK in ESTABLISHED after SYN_RECV, or a valid answer for a
        # picked-up connection.
        ct.status = status | IPS_ASSURED
    ct.deadline = now + timeout
    return None


def _special(ct: TcpConn, direction: int, index: int, old: int, new_state: int, seq: int,
             ack: int, end: int, win: int, buf: memoryview, opt_off: int, opt_len: int, s):
    """The special cells of nf_conntrack_tcp_packet's switch, before the window check.

    Returns (old, new_state, check_window) to go on with, or what packet()
    must return: REPEAT, an INVALID reason, or None for a packet accepted
    without any change.
    """
    if new_state == sSS:
        if old < sTW:
            return old, new_state, True
        # RFC 1122: a connection closed actively "MAY accept a new SYN from the
        # remote TCP to reopen the connection directly from TIME-WAIT".  The
        # kernel ignores the conditions; it also handles aborted connections
        # (we and the server think one exists, the client starts a new one).
        if (ct.w[FLAGS] | ct.w[SEEN + FLAGS]) & CLOSE_INIT or (
                ct.last_dir == direction and ct.last_index == _RST):
            return REPEAT
        new_state = sIG                  # kernel: fallthrough to the IGNORE case

    if new_state == sIG:
        w = ct.w
        # Our entry may be out of sync, so let through packets that may signal
        # the real connection: a) SYN in ORIGINAL, b) SYN/ACK in REPLY, c) ACK
        # in REPLY after the first SYN.  If one is invalid, the receiver's RST
        # is caught below.
        if (index == _SYNACK and ct.last_index == _SYN and ct.last_dir != direction
                and ack == w[LAST_END]):
            # b) This SYN/ACK acknowledges a SYN we ignored: client and server
            # are in sync, we are not.  Resync from the annotated SYN.
            old = sSS
            new_state = sSR
            last = ct.last_dir * SEEN
            w[last + END] = w[last + MAXEND] = w[LAST_END]
            w[last + MAXWIN] = w[LAST_WIN] or 1
            w[last + SCALE] = ct.last_wscale
            ct.last_flags &= ~EXP_CHALLENGE_ACK
            w[last + FLAGS] = ct.last_flags
            _reset(w, direction * SEEN)
        else:
            ct.last_index = index
            ct.last_dir = direction
            w[LAST_SEQ] = seq
            w[LAST_END] = end
            w[LAST_WIN] = win
            if index == _SYN and direction == _ORIGINAL:
                # a) The client and the server may be in sync but we are not:
                # note the SYN's options for the resync at b).
                found, scale = parse_options(buf, opt_off, opt_len) if opt_len else (0, 0)
                ct.last_flags = found
                ct.last_wscale = scale if found & WINDOW_SCALE else 0
                if old == sLA:
                    # RFC 5961: the answer may be a challenge ACK, which must
                    # not be taken as the last ACK of LAST_ACK.
                    ct.last_flags |= EXP_CHALLENGE_ACK
            if old == sSS and index == _ACK and direction == _REPLY:
                w[LAST_ACK] = ack        # possible challenge ACK answering the SYN
            return None                  # accepted; state and timeout unchanged

    elif new_state == sIV:
        return f"packet (index {index}) in dir {direction} invalid, state {TcpState(old).name}"

    elif new_state == sTW:
        # RFC 5961 stacks send a challenge ACK to a spurious SYN: that ACK must
        # not be taken as acknowledging the last FIN.
        if (old == sLA and index == _ACK and ct.last_dir != direction
                and ct.last_index == _SYN and ct.last_flags & EXP_CHALLENGE_ACK):
            ct.last_flags &= ~EXP_CHALLENGE_ACK
            return None                  # challenge-ack ignored: no state change

    elif new_state == sS2:
        # The table is not smart enough to handle simultaneous open alone.
        ct.last_flags |= SIMULTANEOUS_OPEN

    elif new_state == sSR:
        if direction == _REPLY and index == _ACK and ct.last_flags & SIMULTANEOUS_OPEN:
            new_state = sES

    elif new_state == sCL and index == _RST:
        rst = _rst_checks(ct, direction, seq, ack, old, s)
        if rst is None:
            return "invalid rst"
        if rst & _KEEP_STATE:
            new_state = old
        return old, new_state, bool(rst & _CHECK_WINDOW)
    return old, new_state, True


def _rst_checks(ct: TcpConn, direction: int, seq: int, ack: int, old: int, s) -> int | None:
    """The RST cases of nf_conntrack_tcp_packet, before the window check.

    Returns _CHECK_WINDOW and/or _KEEP_STATE bits, or None for an invalid RST.
    """
    if old in _CLOSING:
        # Closing: the tuple may have been reused already and the sequence
        # fields are stale; accept the RST without checks.
        return 0
    keep = 0
    w = ct.w
    peer = (direction ^ 1) * SEEN
    if w[peer + FLAGS] & MAXACK_SET and ct.last_index != _SYN:
        # (td_maxack might be outdated if we let a SYN through earlier.)
        established = old == sES and ct.status & IPS_ASSURED    # nf_conntrack_tcp_established()
        if seq == 0 and not established:
            return _CHECK_WINDOW         # most likely the answer to a SYN we let through
        maxack = w[peer + MAXACK]
        if (seq - maxack) & M >= H and not s.tcp_ignore_invalid_rst:
            return None                  # before(seq, td_maxack): invalid RST
        if not established or seq == maxack:
            return _CHECK_WINDOW
        if ct.last_index == _ACK and ct.last_dir == direction and seq == w[LAST_END]:
            return _CHECK_WINDOW         # the RST ends a train: P seq:end, then R end
        keep = _KEEP_STATE               # inexact: stay ESTABLISHED for a challenge ACK
    status = ct.status
    if (((status & IPS_SEEN_REPLY and ct.last_index == _SYN)
            or (not status & IPS_ASSURED and ct.last_index == _ACK))
            and ack == w[LAST_END]):
        # RST sent to an invalid SYN or ACK we let through at a) or c): skip
        # the window check, the packet may ACK segments we ignored.
        return keep
    if old == sSS and ct.last_index == _ACK and ct.last_dir == _REPLY and seq == w[LAST_ACK]:
        return keep                      # reset answering a challenge ACK we let through
    return _CHECK_WINDOW | keep


def in_window(ct: TcpConn, direction: int, index: int, seq: int, ack: int, win: int,
              end: int, flags: int, buf: memoryview, opt_off: int, opt_len: int,
              s) -> tuple[int, str] | None:
    """Check a segment against the sequence windows and update them (kernel: tcp_in_window).

    Guido van Rooij's "Real Stateful TCP Packet Filtering in IP Filter", with
    the bounds changed per RFC 793 so that a segment need only intersect the
    window:

        td_maxend = max(sack + max(win, 1)) seen in reply packets
        td_maxwin = max(max(win, 1)) + (sack - ack) seen in sent packets
        td_maxwin += seq + len - sender.td_maxend  if seq + len > sender.td_maxend
        td_end    = max(seq + len) seen in sent packets

        I.   Upper bound for valid data:   seq <= sender.td_maxend
        II.  Lower bound for valid data:   seq + len >= sender.td_end - receiver.td_maxwin
        III. Upper bound for valid (s)ack: sack <= receiver.td_end
        IV.  Lower bound for valid (s)ack: sack >= receiver.td_end - MAXACKWINDOW

    where sack is the highest right edge of the SACK blocks, or the ack
    without them, and MAXACKWINDOW = max(sender.td_maxwin, 66000).

    Returns None to accept (windows updated), or (_IGNORE or _INVALID,
    reason).  Failing I or III is invalid; failing II or IV (retransmitted or
    delayed segments) is ignored: accepted without updating anything.  Any
    failure is accepted when the sender is BE_LIBERAL or tcp_be_liberal is set.

    The kernel writes I as before(seq, td_maxend + 1); !before(a, b + 1) is
    exactly after(a, b), which is one subtraction less here.
    """
    w = ct.w
    snd = direction * SEEN               # where the sender's and the receiver's words start
    rcv = SEEN - snd
    win_raw = win
    sack = ack
    if (opt_len and w[rcv + FLAGS] & SACK_PERM
            and (opt_len != 12 or _WORD(buf, opt_off)[0] != _TS_ONLY)):
        sack = highest_sack(buf, opt_off, opt_len, sack)
    if ct.help is not None and ct.help.seqadj is not None:
        # a helper's rewrite moved the receiver's sequence numbers: ack in its own terms
        shift = ct.help.seq_offset(1 - direction, (ack - 1) & M)
        ack = (ack - shift) & M
        sack = (sack - shift) & M

    if w[snd + MAXWIN] == 0:
        # Initialize sender data.
        if flags & SYN:
            _init_sender(w, snd, rcv, end, win, buf, opt_off, opt_len, direction)
            if not flags & ACK:
                return None              # simultaneous open
        else:
            # In the middle of a connection whose history is lost to us: use
            # what this packet says.
            w[snd + END] = end
            swin = (win << w[snd + SCALE]) or 1
            w[snd + MAXWIN] = swin
            w[snd + MAXEND] = (end + swin) & M
            if w[rcv + MAXWIN] == 0:
                # No traffic the other way yet: make III and IV pass until then.
                w[rcv + END] = w[rcv + MAXEND] = sack
            elif sack == (w[rcv + END] + 1) & M:
                w[rcv + END] = sack      # likely the reply to a keepalive; needed for III
    elif (flags & SYN and (w[snd + END] - end) & M >= H
          and (ct.state == sSS or ct.state == sSR)):
        # RFC 793: "if a TCP is reinitialized ... then it need not wait at all;
        # it must only be sure to use sequence numbers larger than those
        # recently used."  Re-init this direction as for the first SYN(/ACK).
        _init_sender(w, snd, rcv, end, win, buf, opt_off, opt_len, direction)
        if direction == _REPLY and not flags & ACK:
            return None

    if not flags & ACK:
        ack = sack = w[rcv + END]        # no ACK: pretend it was set and OK
    elif flags & RST and ack == 0:
        ack = sack = w[rcv + END]        # broken stacks set ACK in RST with a zero ack

    if flags & RST and seq == 0 and ct.state == sSS:
        seq = end = w[snd + END]         # RST sent answering a SYN

    s_end = w[snd + END]
    s_maxend = w[snd + MAXEND]
    s_maxwin = w[snd + MAXWIN]
    s_flags = w[snd + FLAGS]
    r_end = w[rcv + END]
    r_maxwin = w[rcv + MAXWIN]
    # The lower bounds of II and IV: in_recv_win is after(end, low_end),
    # ack_ok is after(sack, low_ack).
    low_end = s_end - r_maxwin - 1
    low_ack = r_end - (max(MAXACKWINCONST, s_maxwin)) - 1

    if (s_maxend - seq) & M >= H:                       # I fails: after(seq, td_maxend)
        overshot = (end - s_maxend + 1) & M
        if (r_maxwin and (low_end - end) & M >= H       # II
                and (low_ack - sack) & M >= H           # IV
                and overshot <= r_maxwin
                and (r_end - sack) & M < H):            # III
            # Work around TCPs that send more than the receive window allows:
            # if only the sequence check fails, advance td_end so that the
            # peer's ACK for this data does not fail III later.
            w[snd + END] = end
            w[snd + FLAGS] = s_flags | DATA_UNACKNOWLEDGED
            if _liberal(s_flags, s):
                return None
            return _IGNORE, f"{overshot} bytes more than expected"
        if _liberal(s_flags, s):
            return None
        return _INVALID, ("SEQ is over upper bound "
                          f"{(s_maxend + 1) & M} (over the window of the receiver)")

    if (r_end - sack) & M >= H:                         # III fails: after(sack, td_end)
        if _liberal(s_flags, s):
            return None
        return _INVALID, f"ACK is over upper bound {(r_end + 1) & M} (ACKed data not seen yet)"

    if r_maxwin and (low_end - end) & M < H:            # II fails: !after(end, low_end)
        if _liberal(s_flags, s):
            return None
        return _IGNORE, ("SEQ is under lower bound "
                         f"{low_end & M} (already ACKed data retransmitted)")

    if (low_ack - sack) & M < H:                        # IV fails: !after(sack, low_ack)
        if _liberal(s_flags, s):
            return None
        return _IGNORE, ("ignored ACK under lower bound "
                         f"{low_ack & M} (possible overly delayed)")

    # Take into account window scaling (RFC 7323).
    if not flags & SYN:
        win <<= w[snd + SCALE]

    # Update sender data.
    swin = (win + sack - ack) & M
    if s_maxwin < swin:
        w[snd + MAXWIN] = swin
    if (s_end - end) & M >= H:                          # after(end, td_end)
        w[snd + END] = end
        s_flags |= DATA_UNACKNOWLEDGED
    if flags & ACK:
        if not s_flags & MAXACK_SET:
            w[snd + MAXACK] = ack
            s_flags |= MAXACK_SET
        elif (w[snd + MAXACK] - ack) & M >= H:          # after(ack, td_maxack)
            w[snd + MAXACK] = ack
    w[snd + FLAGS] = s_flags

    # Update receiver data.
    if r_maxwin and (s_maxend - end) & M >= H:          # after(end, sender.td_maxend)
        w[rcv + MAXWIN] = (r_maxwin + end - s_maxend) & M
    right = sack + win                                  # after(right, td_maxend - 1),
    if (right - w[rcv + MAXEND]) & M < H:               # i.e. !before(right, td_maxend)
        w[rcv + MAXEND] = (right if win else right + 1) & M
    if ack == r_end:
        w[rcv + FLAGS] &= ~DATA_UNACKNOWLEDGED

    # Count retransmissions of the same pure ACK.
    if index == _ACK:
        if (ct.last_dir == direction and w[LAST_SEQ] == seq and w[LAST_ACK] == ack
                and w[LAST_END] == end and w[LAST_WIN] == win_raw):
            ct.retrans += 1
        else:
            ct.last_dir = direction
            w[LAST_SEQ] = seq
            w[LAST_ACK] = ack
            w[LAST_END] = end
            w[LAST_WIN] = win_raw
            ct.retrans = 0
    return None


def _liberal(sender_flags: int, s) -> bool:
    """kernel: nf_tcp_log_invalid(): a liberal sender or tcp_be_liberal accepts anyway."""
    return bool(sender_flags & BE_LIBERAL or s.tcp_be_liberal)


def _handle_invalid(ct: TcpConn, direction: int, index: int, now: float, s) -> None:
    """An out-of-window FIN or RST on an ASSURED entry (kernel: nf_tcp_handle_invalid).

    Connections should not hang around in ESTABLISHED for days 'just because'
    conntrack deemed a FIN/RST out of window: if the other side closed last,
    shrink the timeout as for unacknowledged data.
    """
    if not ct.status & IPS_ASSURED or (index != _RST and index != _FIN):
        return
    if ct.last_dir != direction and (ct.last_index == _FIN or ct.last_index == _RST):
        expires = ct.deadline - now
        if expires < 120:
            return
        timeout = s.tcp_timeouts[_UNACK]
        if expires > timeout:
            ct.deadline = now + timeout
    else:
        ct.last_index = index
        ct.last_dir = direction
