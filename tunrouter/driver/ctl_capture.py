"""Control-socket command `capture`: the frames crossing one port, streamed.

Frames are copied where the router meets the device: "in" is a frame as it
was read from the port, before any processing; "out" one as it is written
to the port, after processing (translated, TTL decremented, or made by the
router).  Each item:

    {"dir": "in", "t": 1763800000.123456, "frame": "<hex>", "linktype": 101}

linktype is the pcap one: 101 (raw IPv4) on a TUN port, 1 (Ethernet) on a
TAP port.  A filter (core.trace's spellings) selects by the IPv4 packet.
"""
import time

from tunrouter.core.desc import parse
from tunrouter.core.trace import compile_filter
from tunrouter.driver.control import Subscription

TOPIC = "capture"
LINKTYPE_ETHERNET, LINKTYPE_RAW = 1, 101
DIRECTIONS = {"in": (0,), "out": (1,), "both": (0, 1)}


def capture_handlers(router) -> dict:
    names, taps = router._names, router._tap

    def capture(req):
        port_name = req.get("port")
        if port_name not in names:
            raise ValueError(f"no port {port_name!r}; ports: {', '.join(names)}")
        port = names.index(port_name)
        direction = req.get("direction", "both")
        if direction not in DIRECTIONS:
            raise ValueError("direction: in, out or both")
        wanted = DIRECTIONS[direction]
        match = compile_filter(str(req.get("filter") or ""), names)
        linktype = LINKTYPE_ETHERNET if taps[port] else LINKTYPE_RAW

        def one(item):
            p, d, t, frame = item
            if p != port or d not in wanted:
                return None
            ip = frame[14:] if taps[port] else frame
            if taps[port] and frame[12:14] != b"\x08\x00":
                ok = not req.get("filter")       # ARP and the like: only without a filter
            else:
                desc = parse(memoryview(ip), port)
                ok = not isinstance(desc, int) and match(desc, port)
            if not ok:
                return None
            return {"dir": ("in", "out")[d], "t": t, "frame": frame.hex(), "linktype": linktype}
        sub = Subscription(TOPIC, one)
        sub.port = port
        return sub

    return {"capture": capture}


class Taps:
    """The ports being captured and the frames copied since the last publish."""

    def __init__(self):
        self.ports: frozenset[int] = frozenset()
        self.frames: list[tuple[int, int, float, bytes]] = []

    def copy(self, port: int, direction: int, frame) -> None:
        self.frames.append((port, direction, time.time(), bytes(frame)))

    def sync(self, ctl) -> list[int]:
        """Follow the live subscriptions; publish what was copied; return dropped fds."""
        subs = ctl.subscriptions(TOPIC) if ctl is not None else []
        self.ports = frozenset(s.port for s in subs)
        frames, self.frames = self.frames, []
        if not frames or not subs:
            return []
        return ctl.publish(TOPIC, frames)
