"""The driver's time budget for helpers: SIGALRM around help(), always disarmed."""
import signal

import pytest
from packets import H1, LAN_TUN, SRV, make_router, udp4

from tunrouter.core.port import PortSpec
from tunrouter.core.router import Router
from tunrouter.core.verdict import Drop
from tunrouter.driver.alarm import HelperAlarm
from tunrouter.helpers import HelperSettings
from tunrouter.helpers.base import UDP, Helper
from tunrouter.helpers.guard import HelperTimeout


class Forever(Helper):
    name, proto, ports = "forever", UDP, (9999,)
    calls = 0

    def help(self, pkt):
        Forever.calls += 1
        while True:
            pass


def router_with(helper: Helper, **settings) -> Router:
    base = make_router()
    hs = HelperSettings(auto=True, budget=0.02, **settings)
    return Router([PortSpec(p.index, p.name, p.kind, p.address, p.prefixlen, p.mtu, p.mac)
                   for p in base.ports], helpers={helper.name: helper}, helper_settings=hs)


@pytest.fixture(autouse=True)
def _no_timer_left():
    yield
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_looping_helper_is_cut_off_forwarded_counted_then_switched_off():
    Forever.calls = 0
    r = router_with(Forever(), max_faults=3, window=60.0)
    before = signal.getsignal(signal.SIGALRM)
    with HelperAlarm().install(r.guard):
        for i in range(5):
            out = r.process(LAN_TUN, udp4(H1, SRV, 40000 + i, 9999, b"hello"), float(i))
            assert len(out) == 1                       # on_fault accept: forwarded
            assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is before and r.guard.alarm is None
    assert r.guard.faults["forever"] == 3
    assert r.guard.disabled == {"forever"}
    assert Forever.calls == 3                          # switched off: no longer called
    assert any("switched off after 3 faults" in n for n in r.notices)
    assert any("HelperTimeout" in n for n in r.notices)
    assert r.counters.forwarded == 5


def test_on_fault_drop_drops_the_packet():
    r = router_with(Forever(), on_fault="drop")
    with HelperAlarm().install(r.guard):
        assert r.process(LAN_TUN, udp4(H1, SRV, 40000, 9999, b"x"), 1.0) == []
    assert r.counters.drops[Drop.HELPER_FAULT] == 1


def test_a_quick_helper_is_not_disturbed_and_a_late_signal_is_ignored():
    class Quick(Helper):
        name, proto, ports = "quick", UDP, (9999,)

        def help(self, pkt):
            return None

    r = router_with(Quick())
    alarm = HelperAlarm().install(r.guard)
    try:
        r.process(LAN_TUN, udp4(H1, SRV, 40000, 9999, b"x"), 1.0)
        signal.raise_signal(signal.SIGALRM)            # after the call: no exception
    finally:
        alarm.close()
    assert not r.guard.faults


def test_the_alarm_raises_helper_timeout_inside_the_block():
    alarm = HelperAlarm()
    alarm.install(type("G", (), {"alarm": None})())
    try:
        with pytest.raises(HelperTimeout), alarm.alarm(0.01):
            while True:
                pass
    finally:
        alarm.close()

