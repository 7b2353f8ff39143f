"""Busy polling in the driver's loop: after a frame, poll without sleeping for busy_poll seconds.

The devices are datagram socket pairs (readv takes one frame each, as from a
TUN device); epoll is wrapped to record the timeout of every poll, and the
clock is a counter the test moves.
"""
import select
import socket

import pytest
from packets import H1, LAN_TUN, SRV, make_router, udp4

from tunrouter.driver.loop import Loop


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def run_polls(monkeypatch, busy_poll: float, steps: list[float]) -> list[float]:
    """Feed one frame, then poll len(steps) times, the clock moving by steps[i] before poll i."""
    router = make_router()
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in router.ports]
    for a, _ in pairs:
        a.setblocking(False)
    clock = Clock()
    loop = Loop(router, [a.fileno() for a, _ in pairs], None, clock=clock, busy_poll=busy_poll)
    timeouts: list[float] = []
    real_epoll = select.epoll

    class RecordingEpoll:
        def __init__(self):
            self.ep = real_epoll()

        def register(self, fd, mask):
            self.ep.register(fd, mask)

        def unregister(self, fd):
            self.ep.unregister(fd)

        def poll(self, timeout):
            timeouts.append(timeout)
            if len(timeouts) > len(steps):
                loop.stop()
                return []
            clock.t += steps[len(timeouts) - 1]
            return self.ep.poll(0)

        def close(self):
            self.ep.close()

    monkeypatch.setattr(select, "epoll", RecordingEpoll)
    pairs[LAN_TUN][1].send(bytes(udp4(H1, SRV, 5000, 53)))
    try:
        loop.run()
    finally:
        for a, b in pairs:
            a.close()
            b.close()
    assert router.counters.forwarded == 1
    return timeouts


def test_without_busy_polling_the_loop_sleeps_after_a_frame(monkeypatch):
    timeouts = run_polls(monkeypatch, 0.0, [0.0, 0.001, 0.001])
    assert all(t > 0 for t in timeouts[1:])


def test_busy_polling_spins_for_its_time_after_a_frame_then_sleeps(monkeypatch):
    # the frame is read at the first poll (t = 100.0); 5 ms later still spinning, 20 ms later not
    timeouts = run_polls(monkeypatch, 0.010, [0.0, 0.005, 0.015, 0.001])
    assert timeouts[1:3] == [0.0, 0.0]
    assert timeouts[3] > 0 and timeouts[4] > 0


@pytest.mark.parametrize("value", [-1, 10_000_001])
def test_busy_poll_us_out_of_range_is_refused(tmp_path, value):
    from tunrouter.config import ConfigError, load_router
    p = tmp_path / "r.toml"
    p.write_text(f'[routers.r]\nbusy_poll_us = {value}\n[[routers.r.interfaces]]\nname = "a"\n'
                 f'netns = "x"\naddress = "10.0.0.1/24"\n')
    with pytest.raises(ConfigError, match="busy_poll_us"):
        load_router(p, "r")
