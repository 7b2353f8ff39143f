"""Running helpers so that their faults stay theirs.

help() is code written against this project, often a prototype, on the
packet path.  An exception, an answer that is not a Found, or an overrun of
the time budget is a fault: the packet gets the configured verdict
("accept": forwarded as if the helper had found nothing; "drop"), the fault
is counted and logged once per helper with its traceback, and a helper that
faults max_faults times within window seconds is switched off, logged and
visible in stats, while forwarding goes on: its connections are simply no
longer inspected.

The core has no clock and no signals: the time budget is enforced by an
alarm the driver installs (Guard.alarm, a context manager factory taking the
budget in seconds that raises HelperTimeout when it expires).
"""
import collections
import traceback

from tunrouter.helpers.base import Expect, Found, Helper, Packet


class HelperTimeout(Exception):
    """help() ran past its time budget."""


FAULT = object()          # call()'s answer for a fault


def check(found, pkt: Packet) -> None:
    """Refuse an answer the router could not apply safely (TypeError, ValueError)."""
    if not isinstance(found, Found):
        raise TypeError(f"help() returned {type(found).__name__}, not Found or None")
    for e in found.expects:
        if not isinstance(e, Expect):
            raise TypeError(f"expects holds {type(e).__name__}, not Expect")
        for name in ("src", "dst"):
            a = getattr(e, name)
            if not (a is None and name == "src" or isinstance(a, bytes) and len(a) == 4):
                raise ValueError(f"Expect.{name} must be 4 address bytes, got {a!r}")
        for name in ("sport", "dport"):
            p = getattr(e, name)
            if not (p is None and name == "sport" or isinstance(p, int) and 0 <= p <= 65535):
                raise ValueError(f"Expect.{name} must be a port number, got {p!r}")
        r = e.rewrite
        if r is not None and not 0 <= r.start <= r.end <= len(pkt.payload):
            raise ValueError(f"Rewrite [{r.start}, {r.end}) is outside the payload")


class Guard:
    """Calls helpers, counts and contains their faults.

    on_fault      "accept" or "drop": what happens to a packet whose helper faulted
    max_faults    faults within window seconds that switch a helper off
    budget        seconds one help() call may take (enforced when alarm is set)
    notices       where log lines go (the router's notices)
    """

    def __init__(self, notices: list, on_fault: str = "accept", max_faults: int = 5,
                 window: float = 60.0, budget: float = 0.05):
        self.notices = notices
        self.on_fault = on_fault
        self.max_faults = max_faults
        self.window = window
        self.budget = budget
        self.alarm = None
        self.faults: collections.Counter[str] = collections.Counter()
        self.disabled: set[str] = set()
        self._recent: dict[str, collections.deque] = {}
        self._logged: set[str] = set()

    def new_state(self, helper: Helper, now: float):
        """helper.new_state(), contained like help(): the state, or FAULT."""
        try:
            return helper.new_state()
        except Exception as e:  # noqa: BLE001 - as in call()
            self._fault(helper.name, e, now)
            return FAULT

    def call(self, helper: Helper, pkt: Packet, now: float):
        """helper.help(pkt), checked: a Found, None, or FAULT."""
        try:
            if self.alarm is not None:
                with self.alarm(self.budget):
                    found = helper.help(pkt)
            else:
                found = helper.help(pkt)
            if found is not None:
                check(found, pkt)
            return found
        except Exception as e:  # noqa: BLE001 - the point: nothing a helper does escapes
            self._fault(helper.name, e, now)
            return FAULT

    def _fault(self, name: str, e: Exception, now: float) -> None:
        self.faults[name] += 1
        if name not in self._logged:
            self._logged.add(name)
            trace = "".join(traceback.format_exception(e)).rstrip()
            fate = "dropped" if self.on_fault == "drop" else "forwarded without the helper"
            self.notices.append(f"helper {name}: fault (packet {fate}; further faults "
                                f"counted, not logged):\n{trace}")
        recent = self._recent.setdefault(name, collections.deque())
        recent.append(now)
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if len(recent) >= self.max_faults and name not in self.disabled:
            self.disabled.add(name)
            self.notices.append(f"helper {name}: switched off after {len(recent)} faults in "
                                f"{self.window:g} s; forwarding goes on without it")

    def enable(self, name: str) -> None:
        """Switch a helper back on (after a reload), its fault history forgotten."""
        self.disabled.discard(name)
        self._recent.pop(name, None)
        self._logged.discard(name)
