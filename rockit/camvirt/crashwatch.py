"""Crash awareness: which domains camvirtd expects to be running, which stopped behind its back, and
how many automatic restarts the last hour allows. Plain state, no I/O: the server feeds it."""

import collections
import threading

from .constants import VMState

HOUR = 3600.0


class CrashWatch:
    def __init__(self, restarts_per_hour):
        self._lock = threading.Lock()
        self._expected = set()
        self._stops = {}  # domain -> {'state': ..., 'time': unix time}
        self._restarts_per_hour = restarts_per_hour
        self._restart_times = collections.deque()

    def expect_running(self, names):
        """After a successful initialize: these should stay up; earlier stops are forgotten."""
        with self._lock:
            self._expected.update(names)
            for name in names:
                self._stops.pop(name, None)

    def expect_off(self, names):
        """After a shutdown (whatever its result): these may stop."""
        with self._lock:
            self._expected.difference_update(names)

    def observe(self, name, state, now):
        """Records a state change; True when it is an unexpected stop (reported once per stop)."""
        with self._lock:
            if name not in self._expected or state not in VMState.STOPPED:
                return False
            self._expected.discard(name)
            self._stops[name] = {'state': state, 'time': now}
            return True

    def unexpected_stop(self, name):
        with self._lock:
            return self._stops.get(name)

    def take_restart(self, now):
        """True (and counted) when another automatic restart fits in the hourly budget."""
        with self._lock:
            while self._restart_times and now - self._restart_times[0] >= HOUR:
                self._restart_times.popleft()
            if len(self._restart_times) >= self._restarts_per_hour:
                return False
            self._restart_times.append(now)
            return True
