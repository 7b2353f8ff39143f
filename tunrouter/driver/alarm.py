"""The helpers' time budget: a real-time interval timer around each help() call.

Guard.alarm wants a context-manager factory taking the budget in seconds;
HelperAlarm.install(guard) gives it one that arms ITIMER_REAL for the budget
and whose SIGALRM handler raises HelperTimeout inside help(), where the
guard counts it as a fault.  The timer is disarmed on every way out, and a
SIGALRM arriving after the call is over is ignored, so a late signal can
never hit the packet path outside help().

Signals go to the main thread only: install from the thread that runs the
router (the driver's loop, `tunrouter replay`).
"""
import contextlib
import signal
from typing import Self

from tunrouter.helpers.guard import HelperTimeout


class HelperAlarm:
    def __init__(self):
        self._armed = False
        self._old = None

    def install(self, guard) -> Self:
        """Handle SIGALRM and give guard its alarm; close() undoes both."""
        self._old = signal.signal(signal.SIGALRM, self._on_alarm)
        self._guard = guard
        guard.alarm = self.alarm
        return self

    def _on_alarm(self, _signum, _frame) -> None:
        if self._armed:
            self._armed = False
            raise HelperTimeout("help() ran past its time budget")

    @contextlib.contextmanager
    def alarm(self, budget: float):
        self._armed = True
        signal.setitimer(signal.ITIMER_REAL, budget)
        try:
            yield
        finally:
            # first disarm the handler, then the timer: a signal in between is ignored
            self._armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)

    def close(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        self._armed = False
        if self._old is not None:
            signal.signal(signal.SIGALRM, self._old)
            self._old = None
        if getattr(self, "_guard", None) is not None and self._guard.alarm == self.alarm:
            self._guard.alarm = None
        self._guard = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
