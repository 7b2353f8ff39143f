"""The connection entry and what track() says about a packet.

Conn mirrors the part of the kernel's struct nf_conn that tracking needs:
both tuples, the status bits, the deadline and the mark.  Protocol state
lives in subclasses (proto/tcp.py TcpConn, proto/udp.py UdpConn), as OVS
embeds `struct conn` in `struct conn_tcp`; ICMP and generic entries carry
nothing more.

Memory is the constraint: a router may hold a million entries, so every
field is a slot and a field is added only with the code that uses it.  A NAT
binding costs no field of its own: it is the reply tuple (the kernel's
nf_conntrack_alter_reply) plus the SRC_NAT/DST_NAT bits; only MASQUERADE
adds the egress port it depends on.  Helpers, expectations and sequence
adjustment share one slot, `help`, None on every connection without them
(the kernel's nf_conn_help extension, plus ct->master).  The status bits keep
the kernel's numbering.
"""
import enum

from tunrouter.conntrack.tuple import Tuple

# kernel: enum ip_conntrack_status (include/uapi/linux/netfilter/nf_conntrack_common.h).
# Plain ints, not an IntFlag: they are tested on every packet.
IPS_EXPECTED = 1 << 0        # made from an expectation: RELATED until a reply
IPS_SEEN_REPLY = 1 << 1      # a packet went the REPLY way: not [UNREPLIED]
IPS_ASSURED = 1 << 2         # [ASSURED]: never early-dropped
IPS_CONFIRMED = 1 << 3       # in the table (the first packet was accepted)
IPS_SRC_NAT = 1 << 4         # the source of the ORIGINAL direction is translated
IPS_DST_NAT = 1 << 5         # the destination of the ORIGINAL direction is translated
IPS_NAT_MASK = IPS_SRC_NAT | IPS_DST_NAT
IPS_SRC_NAT_DONE = 1 << 7    # the SRC binding is decided (perhaps the null binding)
IPS_DST_NAT_DONE = 1 << 8
IPS_DYING = 1 << 9           # deleted; a caller may still hold it for this packet
IPS_SEQ_ADJUST = 1 << 6      # a helper changed a payload's length: seq/ack are adjusted


class CtInfo(enum.IntEnum):
    """What track() says about a packet: the kernel's enum ip_conntrack_info,
    plus the two outcomes where the kernel attaches no conntrack at all.

    The value carries the direction, as in the kernel: values from
    ESTABLISHED_REPLY (IP_CT_IS_REPLY) on are reply-direction packets.
    """
    ESTABLISHED = 0          # ORIGINAL direction, after a reply was seen
    RELATED = 1              # an ICMP error about a tracked connection (ORIGINAL)
    NEW = 2                  # ORIGINAL direction, no reply seen yet
    ESTABLISHED_REPLY = 3    # REPLY direction (IP_CT_IS_REPLY)
    RELATED_REPLY = 4        # an ICMP error, REPLY direction
    UNTRACKED = 7            # IP_CT_UNTRACKED: exempted by NOTRACK / -j CT --notrack
    INVALID = 8              # no conntrack: not a valid part of any connection
    DROP = 9                 # conntrack itself drops it (table full): kernel NF_DROP


# --ctstate name of each CtInfo value (kernel: xt_conntrack's ctinfo -> state bit).
CTSTATE = {
    CtInfo.ESTABLISHED: "ESTABLISHED",
    CtInfo.RELATED: "RELATED",
    CtInfo.NEW: "NEW",
    CtInfo.ESTABLISHED_REPLY: "ESTABLISHED",
    CtInfo.RELATED_REPLY: "RELATED",
    CtInfo.UNTRACKED: "UNTRACKED",
    CtInfo.INVALID: "INVALID",
    CtInfo.DROP: "INVALID",
}


class Conn:
    """One tracked connection (kernel: struct nf_conn).

    orig, reply  the tuples of the two directions (tuplehash[dir].tuple); with
                 NAT the reply tuple is not simply invert(orig).
    status       IPS_* bits.
    deadline     monotonic time at which the entry expires (kernel: ct->timeout).
    timer        the expiry bucket the table filed it in (None while unconfirmed).
    mark         the connection mark (CONNMARK, `mark=` in conntrack -L).
    masq_port    the port a MASQUERADE binding took its address from, or -1
                 (kernel: nf_conn_nat.masq_index): the entry dies with that
                 address, and a packet leaving by another port kills it.
    help         a Help (helper, expectations, master, sequence adjustment) or None.
    acct         [packets, bytes] ORIGINAL then REPLY while nf_conntrack_acct is on, else None
    nat_plans    the NAT rewrite of each (manip, direction) worked out once the binding
                 is final (nat.rewrite.make_plans), or None until a packet needs it
    """
    __slots__ = ("acct", "deadline", "help", "mark", "masq_port", "nat_plans", "orig", "reply",
                 "status", "timer")

    # Protocols without a state machine print no state; TcpConn shadows this.
    state = None

    def __init__(self, orig: Tuple, reply: Tuple):
        self.orig = orig
        self.reply = reply
        self.status = 0
        self.deadline = 0.0
        self.timer = None
        self.mark = 0
        self.masq_port = -1
        self.help = None
        self.acct = None
        self.nat_plans = None

    @property
    def helper_name(self) -> str | None:
        """The attached helper's name (`helper=` in conntrack -L), or None."""
        h = self.help
        return None if h is None or h.helper is None else h.helper.name

    @property
    def id(self) -> int:
        """A 32-bit id, stable while the entry lives (`conntrack -o id`).

        Like the kernel's nf_ct_get_id(), derived from the object's address
        and its original tuple rather than stored: it costs no memory, and,
        as in the kernel, an id may be reused after the entry is gone.
        """
        return (id(self) ^ hash(self.orig)) & 0xFFFFFFFF

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.orig} status={self.status:#x}>"


class Help:
    """What helpers hang on a connection (kernel: nf_conn_help, ct->master, nf_conn_seqadj).

    helper   the Helper watching this connection's payload, or None
    state    that helper's per-connection state (Helper.new_state())
    expects  the live expectations this connection created
    master   for a connection made from an expectation: the connection that expected it
    seqadj   [[correction_pos, offset_before, offset_after] per direction] once a
             helper changed a payload's length, else None
    """
    __slots__ = ("expects", "helper", "master", "seqadj", "state")

    def __init__(self, helper=None, master=None, state=None):
        self.helper = helper
        self.state = state
        self.expects = []
        self.master = master
        self.seqadj = None

    def seq_offset(self, direction: int, seq: int) -> int:
        """How far a helper's rewrites moved direction's sequence numbers at seq
        (nf_ct_seq_offset): offset_after past the correction point, else offset_before."""
        adj = self.seqadj
        if adj is None:
            return 0
        pos, before, after = adj[direction]
        return after if 0 < ((seq - pos) & 0xFFFFFFFF) < 0x80000000 else before
