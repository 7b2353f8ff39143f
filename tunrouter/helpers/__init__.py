"""Conntrack helpers: protocol parsers that open expected connections.

    base.py      the Helper class and what help() returns (Found, Expect, Rewrite)
    ftp.py, irc.py, tftp.py, amanda.py
                 the built-in helpers, as the kernel's nf_conntrack_* modules parse
    registry.py  the built-in table and the `tunrouter.helpers` entry points
    guard.py     faults contained: exceptions, bad answers, time overruns
    mangle.py    payload rewriting under NAT; seqadj.py, the TCP sequence
                 adjustment a length change needs

The router attaches a helper to a new connection by a raw-table
`CT --helper NAME` rule (or, when configured, by port, as kernels before 4.7
did), calls it at the confirm point (after NAT) for the connection's packets,
registers the expectations it returns in conntrack's ExpectTable, and under
NAT rewrites the announced address and port.
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HelperSettings:
    """A router's [helpers] table.

    auto        attach helpers by destination port, as kernels before 4.7 did
                (nf_conntrack_helper=1); off by default, as now
    ports       per helper name, the ports auto-assignment uses (the module's
                ports= parameter); default: the helper's own
    on_fault    "accept" or "drop": a packet whose helper faulted
    max_faults, window   faults within window seconds that switch a helper off
    budget      seconds one help() call may run
    """
    auto: bool = False
    ports: dict = field(default_factory=dict)
    on_fault: str = "accept"
    max_faults: int = 5
    window: float = 60.0
    budget: float = 0.05
