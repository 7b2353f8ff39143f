"""Conntrack events, as ctnetlink sends them to `conntrack -E` (kernel: ctnetlink_conntrack_event).

An Event is a snapshot taken when the event happens, since the entry keeps
changing (or is gone) by the time the driver formats it.  What it carries
follows what the reference kernel puts in the message, checked with
`conntrack -E` on 6.18:

* NEW: timeout and, for TCP, the state;
* UPDATE: timeout; the TCP state only if this packet changed it;
* DESTROY: the TCP state, and the remaining timeout unless it is zero
  (an expired entry prints none); `[USERSPACE] portid=` when a user deleted it;
* the mark only when it is not zero.
"""
import enum
from typing import NamedTuple

from tunrouter.conntrack.tuple import Tuple


class EventType(enum.IntEnum):
    """libnetfilter_conntrack's NFCT_T_* values."""
    NEW = 1
    UPDATE = 2
    DESTROY = 4


class Event(NamedTuple):
    type: EventType
    orig: Tuple
    reply: Tuple
    status: int              # IPS_* bits
    state: int | None        # TcpState when the message carries it
    timeout: int | None      # remaining whole seconds, None when not carried
    mark: int
    portid: int              # netlink port of the process that deleted it; 0: the kernel
