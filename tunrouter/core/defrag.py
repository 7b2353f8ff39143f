"""IPv4 reassembly ahead of connection tracking.  Pure: no clock, no I/O.

Mirrors net/ipv4/ip_fragment.c (ip_defrag, ip_frag_queue, ip_frag_reasm,
ip_expire, ip_frag_too_far) and net/ipv4/inet_fragment.c (inet_frag_find,
inet_frag_queue_insert) as of Linux 6.x, called the way
net/ipv4/netfilter/nf_defrag_ipv4.c calls them: before conntrack, with the
user IP_DEFRAG_CONNTRACK_IN.  It does not fragment (wire/fragment.py does),
does not build ICMP errors (the router does, from what expire() returns) and
does not count the router's Drop reasons (push() returns a label; see
REASONS).

Decisions, each the kernel's unless marked "(ours)".  The per-run duplicate
rule, the trimming of misaligned fragments, the teardrop, the ECN failure,
max_dist at 63/64 foreign fragments, the timer running from creation, the
size check at completion and refusal without eviction were each checked
against this machine's kernel (6.18) in a scratch network namespace, by
sending fragments over loopback and reading /proc/net/snmp.

* Queue key: (src, dst, id, protocol).  The kernel's frag_v4_compare_key adds
  `user` (constant here: conntrack-in, zone 0) and `vif`, the l3mdev (VRF)
  master ifindex, which is 0 without VRFs.  The ingress port is *not* part of
  the key: fragments of one datagram arriving on different ports (multipath)
  are reassembled together, as the kernel does.
* Timer: a queue expires `timeout` seconds after it was *created*
  (inet_frag_create: mod_timer(jiffies + timeout)); later fragments do not
  extend it ("RFC791 is wrong proposing to prolongate timer each fragment
  arrival", ipv4_frags_init_net).  The only re-arm is ip_frag_reinit (see
  max_dist).  Queues therefore expire in creation order, kept in an
  OrderedDict: expiry costs what expires.  A queue whose deadline has passed
  is expired before any fragment is matched against it, as the kernel timer
  would already have fired.
* Overlap (inet_frag_queue_insert, RFC 5722 applied to IPv4 since 4.19/5.0):
  any overlap discards the whole queue (IPSTATS_MIB_REASM_OVERLAPS).  A
  fragment lying entirely inside data already held is a duplicate (IPFRAG_DUP):
  that fragment is dropped, the queue kept.  "Inside" is judged against a
  *run*, not a single fragment: the kernel groups fragments that were appended
  at the tail, each adjacent to the previous one, into one run, while a
  fragment inserted anywhere else is a run of its own and is never merged.  So
  [0,8) [8,16) [16,24) in that order form one run and a later [8,24) is a
  duplicate, but in reverse order they are three runs and the same [8,24) is
  an overlap.  The runs are modelled exactly.
* Bad fragments discard the whole queue (ip_frag_queue's `discard_qp`):
  a last fragment whose end is short of data already held or differs from a
  known end, or a non-last fragment reaching past a known end ("corrupt"), and
  a fragment that holds no data ("empty").  A non-last fragment whose payload
  is not a multiple of 8 is *not* dropped: its end is rounded down to a
  multiple of 8 and the excess bytes discarded (`end &= ~7`); it is "empty"
  only if nothing remains.
* Size: the 65,535-byte limit is checked when the datagram completes
  (ip_frag_reasm: ihl + len > 65535 -> -E2BIG), not per fragment: a
  ping-of-death fragment is held like any other until the datagram completes
  (then dropped, "oversize") or times out.
* ECN (RFC 3168 §5.3, ip_frag_ecn_table): the fragments' ECN codepoints are
  combined; Not-ECT mixed with ECT or CE fails the datagram, CE mixed with
  ECT sets CE on the result.
* Memory (inet_frag_find): while the memory in use exceeds high_thresh, every
  fragment is refused, for new and existing queues alike.  Nothing is evicted:
  the LRU evictor that pruned down to ipfrag_low_thresh was removed in 4.17
  (ip-sysctl.rst: "ipfrag_low_thresh ... (Obsolete since linux-4.17)"); the
  knob survives only as the lower bound of ipfrag_high_thresh.  Queues leave
  by completing, failing or timing out.  Accounting follows
  add_frag_mem_limit(): QUEUE_TRUESIZE per queue (sizeof(struct ipq), the
  figure the kernel's own comment in ipv4_frags_init_net uses) plus each
  held fragment's skb->truesize, modelled by truesize() (ours) as the linear
  skb a TUN device would allocate for it: see there.  Duplicates and refused
  fragments are not held and cost nothing.
* max_dist (ip_frag_too_far, RFC 1858 spirit): each source has a counter
  bumped by every fragment from it that reaches a queue.  If more than
  max_dist fragments from that source arrived since this queue last got one,
  the queue's fragments are flushed and its timer re-armed (ip_frag_reinit),
  then the fragment is queued as the first of a fresh queue.  The kernel keeps
  the counter in the inet_peer of (src, vif); only differences between values
  read while a queue lives matter, so ours lives exactly as long as some queue
  from that source does.  As in the kernel, the flush does not reset the
  largest-fragment sizes (q.max_size, max_df_size).
* Result header: the first fragment's header, options included, with total
  length set, ECN CE or-ed in as above, the fragment field set to DF if the
  largest fragment carried DF and to 0 otherwise (max_df_size == max_size),
  and the checksum recomputed.  frag_max_size is IPCB(skb)->frag_max_size:
  the largest fragment received (IP header included, excess beyond the 8-byte
  boundary not counted).

For the router (not done here): nf_ct_ipv4_gather_frags sets skb->ignore_df
on the result, so a reassembled datagram with DF set may still be
refragmented on output unless frag_max_size exceeds the egress MTU
(ip_exceeds_mtu, ip_fragment); ip_do_fragment then caps the fragment size at
frag_max_size.  On timeout, ip_expire sends ICMP time exceeded / fragment
reassembly time exceeded for the conntrack user only when the datagram was
addressed to this host (frag_expire_skip_icmp && rt_type != RTN_LOCAL): a
router stays silent about transit datagrams.
"""
from bisect import bisect_right
from collections import OrderedDict
from typing import NamedTuple

from tunrouter.core.desc import PacketDesc
from tunrouter.wire import ipv4
from tunrouter.wire.checksum import csum

# Defaults: the kernel's ipv4_frags_init_net() and IP_FRAG_TIME.
HIGH_THRESH = 4 << 20        # net.ipv4.ipfrag_high_thresh
LOW_THRESH = 3 << 20         # net.ipv4.ipfrag_low_thresh (no effect since 4.17)
TIMEOUT = 30.0               # net.ipv4.ipfrag_time, seconds
MAX_DIST = 64                # net.ipv4.ipfrag_max_dist; 0 disables the check

MAX_DATAGRAM = 65535         # RFC 791 total length field
QUEUE_TRUESIZE = 200         # sizeof(struct ipq), as the kernel comment counts it
# x86-64 sizes behind skb->truesize, for truesize() below.
NET_SKB_PAD = 64             # headroom tun_get_user() reserves
SKB_STRUCT = 256             # SKB_DATA_ALIGN(sizeof(struct sk_buff))
SKB_SHINFO = 320             # SKB_DATA_ALIGN(sizeof(struct skb_shared_info))

# Why push() dropped the fragment it was given.  Labels are what the router's
# Drop enum prints (Drop.FRAG_OVERLAP.label == "frag-overlap"), so the router
# maps them with one dict built at start-up.
NO_MEM = "frag-no-mem"       # memory in use above high_thresh: fragment refused (-ENOMEM)
DUP = "frag-dup"             # lies inside data already held: dropped, queue kept (IPFRAG_DUP)
OVERLAP = "frag-overlap"     # overlaps data already held: queue discarded (IPFRAG_OVERLAP)
CORRUPT = "frag-corrupt"     # end before held data, second different end, or data past the end
EMPTY = "frag-empty"         # no data (after rounding a non-last fragment down to 8 bytes)
OVERSIZE = "frag-oversize"   # completed datagram longer than 65,535 bytes (-E2BIG)
BAD_ECN = "frag-ecn"         # Not-ECT fragments mixed with ECT/CE ones (ip_frag_ecn_table 0xff)
REASONS = (NO_MEM, DUP, OVERLAP, CORRUPT, EMPTY, OVERSIZE, BAD_ECN)

# ip4_frag_ecn(tos) = 1 << (tos & INET_ECN_MASK): one bit per codepoint seen.
_NOT_ECT, _ECT_1, _ECT_0, _CE = 1, 2, 4, 8
# ip_frag_ecn_table: indexed by the or of those bits; 0xFF fails the datagram,
# anything else is or-ed into the TOS byte of the result.
#   Not-ECT with anything else: 0xFF (RFC 3168 §5.3: must not mix)
#   CE with ECT(0) and/or ECT(1): CE (a congestion mark on one fragment marks the whole)
#   otherwise (one codepoint, or ECT(0)+ECT(1)): 0, the first fragment's TOS stands
_ECN_TABLE = bytes(
    0xFF if m & _NOT_ECT and m & ~_NOT_ECT else
    3 if m & _CE and m & (_ECT_0 | _ECT_1) else 0
    for m in range(16))


def truesize(n: int) -> int:
    """Memory the kernel charges for holding an n-byte fragment (skb->truesize).

    __alloc_skb() asks kmalloc for SKB_DATA_ALIGN(headroom + n) plus the
    shared info, kmalloc rounds that up to a power of two (every such request
    is over 256 bytes), and truesize = that allocation + the sk_buff itself.
    A 1,500-byte fragment costs 2,304.  Checked against this machine's
    kernel: with ipfrag_high_thresh = 20000, eight one-fragment queues of
    1,020-byte fragments fit and the ninth fragment is refused, as here.
    """
    data = ((NET_SKB_PAD + n + 63) & ~63) + SKB_SHINFO
    return SKB_STRUCT + (1 << (data - 1).bit_length())


class Reassembled(NamedTuple):
    """A datagram rebuilt from its fragments."""
    packet: bytearray        # the whole datagram, header checksum valid
    frag_max_size: int       # largest fragment received: refragment to no more than this


class TimedOut(NamedTuple):
    """A queue that expired after its first fragment had arrived."""
    head: bytes              # the offset-0 fragment as received: quote it in the ICMP error
    in_port: int             # port of the queue's latest fragment (kernel: qp->iif)


class _Queue:
    """One datagram being reassembled (kernel: struct ipq + inet_frag_queue).

    Data is held as runs (see the module docstring): starts[i], ends[i] and
    chunks[i] describe run i; runs are sorted, disjoint, and each is
    contiguous.  The last run is the kernel's last_run_head, the one that
    ends highest.  Invariant: every held byte lies in [0, length).
    """
    __slots__ = (
        "chunks",
        "deadline",
        "ecn",
        "ends",
        "first_in",
        "head",
        "head_hlen",
        "in_port",
        "last_in",
        "length",
        "max_df_size",
        "max_size",
        "meat",
        "mem",
        "rid",
        "starts",
    )

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.rid = 0
        self.max_size = 0
        self.max_df_size = 0
        self.reset()

    def reset(self) -> None:
        """Forget the data held (ip_frag_reinit); rid and the largest sizes survive."""
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.chunks: list[list] = []
        self.length = 0          # datagram payload length as far as known (q.len)
        self.meat = 0            # payload bytes held
        self.first_in = False
        self.last_in = False
        self.mem = 0             # truesize of the fragments held
        self.ecn = 0
        self.in_port = 0
        self.head = b""
        self.head_hlen = 0


class Defrag:
    """IPv4 fragment queues: push() fragments, expire() on the timer.

    Not thread-safe; every method takes `now` (monotonic seconds) from the
    caller.  Counters use the kernel's SNMP meanings: reqds (fragments given
    to push), oks (datagrams reassembled), fails (datagrams given up: refused,
    discarded, timed out, too far, failed at reassembly; duplicates are not
    failures), timeouts, overlaps, too_far (queues flushed by max_dist), and
    drops[label] for each fragment push() refused.  mem is the memory in use.
    """

    def __init__(self, high_thresh: int = HIGH_THRESH, low_thresh: int = LOW_THRESH,
                 timeout: float = TIMEOUT, max_dist: int = MAX_DIST):
        # The sysctl table bounds each threshold by the other; low has no other use.
        if not 0 <= low_thresh <= high_thresh:
            raise ValueError(f"need 0 <= low_thresh ({low_thresh}) <= high_thresh ({high_thresh})")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        if max_dist < 0:
            raise ValueError(f"max_dist must be >= 0, not {max_dist}")
        self.high_thresh = high_thresh
        self.low_thresh = low_thresh
        self.timeout = timeout
        self.max_dist = max_dist
        self._queues: OrderedDict[tuple, _Queue] = OrderedDict()   # in deadline order
        self._peers: dict[bytes, list[int]] = {}   # src -> [rid, queues from src]
        self._timed_out: list[TimedOut] = []       # expired inside push(), for expire()
        self.mem = 0
        self.reqds = 0
        self.oks = 0
        self.fails = 0
        self.timeouts = 0
        self.overlaps = 0
        self.too_far = 0
        self.drops = dict.fromkeys(REASONS, 0)

    @property
    def queues(self) -> int:
        """Datagrams being reassembled."""
        return len(self._queues)

    # -- the packet path ------------------------------------------------------

    def push(self, d: PacketDesc, now: float) -> Reassembled | str | None:
        """Queue one fragment; return the datagram it completes, None if it is
        held, or the label (one of REASONS) of why it was dropped.

        d must be a fragment (d.is_fragment) as returned by parse(): buf is
        exactly its total length.  The bytes are copied; d.buf is not kept.
        """
        frag = d.frag
        if not frag & (ipv4.FLAG_MF | ipv4.OFFSET_MASK):
            raise ValueError("Defrag.push() was given a packet that is not a fragment")
        self.reqds += 1
        queues = self._queues
        if queues and next(iter(queues.values())).deadline <= now:
            self._expire_due(now)

        # inet_frag_find(): over the limit, refuse before even looking up.
        if self.mem > self.high_thresh:
            return self._fail(NO_MEM)
        src = d.src
        key = (src, d.dst, d.ident, d.proto)
        q = queues.get(key)
        if q is None:
            q = queues[key] = _Queue(now + self.timeout)
            self.mem += QUEUE_TRUESIZE
            peer = self._peers.get(src)
            if peer is None:
                peer = self._peers[src] = [0, 0]
            peer[1] += 1
        else:
            peer = self._peers[src]

        # ip_frag_too_far(): every fragment from src that reaches a queue
        # bumps src's counter; more than max_dist since this queue's last one
        # means the queue is stale, and ip_frag_reinit() starts it afresh.
        peer[0] += 1
        start, q.rid = q.rid, peer[0]
        if self.max_dist and q.starts and peer[0] - start > self.max_dist:
            self.fails += 1
            self.too_far += 1
            self.mem -= q.mem
            q.reset()
            q.deadline = now + self.timeout
            queues.move_to_end(key)

        buf = d.buf
        hlen = d.hlen
        offset = (frag & ipv4.OFFSET_MASK) << 3
        end = offset + len(buf) - hlen
        if not frag & ipv4.FLAG_MF:
            # The last fragment: its end is the datagram's.  Held data beyond
            # it, or a second last fragment with another end, is corruption.
            if end < q.length or (q.last_in and end != q.length):
                return self._discard(key, q, CORRUPT)
            q.last_in = True
            q.length = end
        else:
            # RFC 791: every fragment but the last carries a multiple of 8
            # bytes; the kernel trims the excess instead of dropping.
            end &= ~7
            if end > q.length:
                if q.last_in:
                    return self._discard(key, q, CORRUPT)
                q.length = end
        if end == offset:
            return self._discard(key, q, EMPTY)

        if offset == 0:
            raw = bytes(buf)                     # kept whole: quoted if the queue times out
            data = memoryview(raw)[hlen:hlen + end]
        else:
            data = bytes(buf[hlen:hlen + end - offset])
        verdict = _insert(q, offset, end, data)
        if verdict is DUP:
            self.drops[DUP] += 1
            return DUP
        if verdict is OVERLAP:
            self.overlaps += 1
            return self._discard(key, q, OVERLAP)

        if offset == 0:
            q.head = raw
            q.head_hlen = hlen
            q.first_in = True
        q.in_port = d.in_port
        q.meat += end - offset
        q.ecn |= 1 << (d.tos & 3)
        cost = truesize(len(buf))
        q.mem += cost
        self.mem += cost
        fragsize = hlen + end - offset
        q.max_size = max(q.max_size, fragsize)
        if frag & ipv4.FLAG_DF and fragsize > q.max_df_size:
            q.max_df_size = fragsize
        if q.first_in and q.last_in and q.meat == q.length:
            return self._reassemble(key, q)
        return None

    def expire(self, now: float) -> list[TimedOut]:
        """Drop the queues whose time is up (ip_expire).

        Returns one TimedOut per expired queue that held its first fragment,
        including queues found expired by push() since the last call; the
        router answers those with ICMP time exceeded, code 1, if it would
        (see the module docstring).
        """
        self._expire_due(now)
        out, self._timed_out = self._timed_out, []
        return out

    def next_deadline(self) -> float:
        """When expire() next has work: the oldest queue's deadline, or inf."""
        if not self._queues:
            return float("inf")
        return next(iter(self._queues.values())).deadline

    def snapshot(self) -> dict:
        """Counters for `tunrouter stats`, with the kernel's SNMP names where there is one."""
        return {"ReasmReqds": self.reqds, "ReasmOKs": self.oks, "ReasmFails": self.fails,
                "ReasmTimeout": self.timeouts, "ReasmOverlaps": self.overlaps,
                "too_far": self.too_far, "queues": len(self._queues), "mem": self.mem,
                "drops": dict(self.drops)}

    # -- pieces ----------------------------------------------------------------

    def _reassemble(self, key: tuple, q: _Queue) -> Reassembled | str:
        """Glue the runs behind the first fragment's header (ip_frag_reasm)."""
        self._remove(key, q)
        ecn = _ECN_TABLE[q.ecn]
        if ecn == 0xFF:
            return self._fail(BAD_ECN)
        hlen = q.head_hlen
        total = hlen + q.length
        if total > MAX_DATAGRAM:
            return self._fail(OVERSIZE)
        out = bytearray(q.head[:hlen])
        for run in q.chunks:
            for data in run:
                out += data
        out[ipv4.TOTAL_LEN:ipv4.TOTAL_LEN + 2] = total.to_bytes(2, "big")
        out[ipv4.TOS] |= ecn
        # DF only if the largest fragment had it: a tiny DF fragment next to a
        # large non-DF one must not make the refragmented output tiny.
        df = ipv4.FLAG_DF if q.max_df_size == q.max_size else 0
        out[ipv4.FLAGS_FRAG:ipv4.FLAGS_FRAG + 2] = df.to_bytes(2, "big")
        out[ipv4.CHECKSUM:ipv4.CHECKSUM + 2] = b"\0\0"
        out[ipv4.CHECKSUM:ipv4.CHECKSUM + 2] = csum(out[:hlen]).to_bytes(2, "big")
        self.oks += 1
        return Reassembled(out, max(q.max_size, q.max_df_size))

    def _discard(self, key: tuple, q: _Queue, reason: str) -> str:
        """Give up the datagram and drop the fragment (ip_frag_queue: discard_qp)."""
        self._remove(key, q)
        return self._fail(reason)

    def _fail(self, reason: str) -> str:
        self.fails += 1
        self.drops[reason] += 1
        return reason

    def _remove(self, key: tuple, q: _Queue) -> None:
        del self._queues[key]
        self.mem -= QUEUE_TRUESIZE + q.mem
        src = key[0]
        peer = self._peers[src]
        peer[1] -= 1
        if not peer[1]:
            del self._peers[src]

    def _expire_due(self, now: float) -> None:
        queues = self._queues
        while queues:
            key, q = next(iter(queues.items()))
            if q.deadline > now:
                break
            self._remove(key, q)
            self.fails += 1
            self.timeouts += 1
            if q.first_in:
                self._timed_out.append(TimedOut(q.head, q.in_port))


def _insert(q: _Queue, offset: int, end: int, data) -> str | None:
    """Hold payload bytes [offset, end) (inet_frag_queue_insert).

    Returns DUP or OVERLAP, holding nothing, or None once data is held.
    """
    starts, ends, chunks = q.starts, q.ends, q.chunks
    if not starts:
        starts.append(offset)
        ends.append(end)
        chunks.append([data])
        return None
    tail_end = ends[-1]
    if tail_end < end:
        # The common case: it ends past everything held.  Starting inside the
        # last run is an overlap; starting at its end extends that run.
        if offset < tail_end:
            return OVERLAP
        if offset == tail_end:
            ends[-1] = end
            chunks[-1].append(data)
        else:
            starts.append(offset)
            ends.append(end)
            chunks.append([data])
        return None
    # Otherwise it is a run of its own, unless it touches one (the kernel's
    # rb-tree search): inside a single run is a duplicate, anything else that
    # touches held data an overlap.
    i = bisect_right(starts, offset)           # runs [0, i) start at or before offset
    if i and offset < ends[i - 1]:
        return DUP if end <= ends[i - 1] else OVERLAP
    if i < len(starts) and starts[i] < end:
        return OVERLAP
    starts.insert(i, offset)
    ends.insert(i, end)
    chunks.insert(i, [data])
    return None
