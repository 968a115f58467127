"""Crash awareness: which domains camvirtd expects to be running, which stopped behind its back, and
how many automatic restarts the last hour allows. Plain state, no I/O: the commands feed it, and
on_change (the state file's writer, as its owner wires it) hears of every change."""

import threading
import time

from ..shared.constants import VMState

HOUR = 3600.0
STOPPED = 'stopped unexpectedly'
STOPPED_WHILE_DOWN = 'stopped while camvirtd was not running'
STOPPED_WHILE_DOWN_REBOOT = STOPPED_WHILE_DOWN + ' (the host has restarted since)'


def recent_restarts(times, now):
    """The restart times that still count against the hourly budget, oldest first: those of the last
    hour. Times in the future (the clock was stepped back since they were taken) count as now: the
    budget they spend comes back an hour from now, not when the clock catches up with them."""
    return sorted(min(t, now) for t in times if now - min(t, now) < HOUR)


class CrashWatch:
    def __init__(self, restarts_per_hour, on_change=None):
        self._lock = threading.Lock()
        self._expected = {}  # domain -> unix time since when it should run
        # Domains restored from the state file whose state libvirt has not told yet: the first state
        # it tells is what became of them while camvirtd was not running.
        self._unverified = set()
        self._stopped_while_down = STOPPED_WHILE_DOWN
        self._stops = {}  # domain -> {'state': ..., 'time': unix time, 'reason': ...}
        self._restarts_per_hour = restarts_per_hour
        self._restart_times = []  # oldest first
        # Called (outside the lock) after every change, to write it down.
        self.on_change = on_change

    def _changed(self):
        if self.on_change is not None:
            self.on_change()

    def expect_running(self, names, now=None):
        """After a successful initialize: these should stay up; earlier stops are forgotten."""
        now = time.time() if now is None else now
        with self._lock:
            for name in names:
                self._expected.setdefault(name, now)
                self._unverified.discard(name)
                self._stops.pop(name, None)
        self._changed()

    def expect_off(self, names):
        """After a shutdown (whatever its result): these may stop, and their earlier unexpected stops are
        dealt with (the operator chose to have them off)."""
        with self._lock:
            for name in names:
                self._expected.pop(name, None)
                self._unverified.discard(name)
                self._stops.pop(name, None)
        self._changed()

    def observe(self, name, state, now, detail=None):
        """Records a state change; the stop's record ({'state', 'time', 'reason'}) when it is an
        unexpected stop (reported once per stop), else None. `detail`: libvirt's word on how it
        stopped ('destroyed ...'), kept beside the reason."""
        with self._lock:
            unverified = name in self._unverified
            if state != VMState.Unknown:
                self._unverified.discard(name)
            if name not in self._expected or state not in VMState.STOPPED:
                return None
            del self._expected[name]
            stop = {'state': state, 'time': now, 'reason': self._stopped_while_down if unverified else STOPPED}
            if detail:
                stop['detail'] = detail
            self._stops[name] = stop
        self._changed()
        return dict(stop)

    def expected_running(self):
        """The domains that should run now, in no particular order."""
        with self._lock:
            return list(self._expected)

    def expected_since(self, name):
        """Since when `name` should run (unix time), None when it should not."""
        with self._lock:
            return self._expected.get(name)

    def unexpected_stop(self, name):
        with self._lock:
            return self._stops.get(name)

    def take_restart(self, now):
        """True (and counted) when another automatic restart fits in the hourly budget."""
        with self._lock:
            self._restart_times = recent_restarts(self._restart_times, now)
            if len(self._restart_times) >= self._restarts_per_hour:
                return False
            self._restart_times.append(now)
        self._changed()
        return True

    # --- across restarts (statefile.DaemonMemory) -------------------------------------------------

    def snapshot(self, now):
        """What must outlive camvirtd, as plain JSON-ready data."""
        with self._lock:
            # Old times forgotten; times in the future are written as taken (take_restart() counts them).
            self._restart_times = [t for t in self._restart_times if now - t < HOUR]
            return {'expected': dict(self._expected), 'stops': {n: dict(s) for n, s in self._stops.items()},
                    'restarts': list(self._restart_times)}

    def restore(self, expected, stops, restarts, now, host_restarted=False):
        """Takes back a snapshot. The domains that should run are checked against the first state
        libvirt reports for each; restart times in the future (the clock went back) count as now."""
        with self._lock:
            self._expected = dict(expected)
            self._unverified = set(expected)
            self._stopped_while_down = STOPPED_WHILE_DOWN_REBOOT if host_restarted else STOPPED_WHILE_DOWN
            self._stops = {n: dict(s) for n, s in stops.items()}
            self._restart_times = recent_restarts(restarts, now)


class RestartQueue:
    """Domains waiting for an automatic restart, restarted by `restart(names)` one batch at a time:
    domains that stop together (every one, after a host reboot) go in one command instead of the
    second being refused because the first one's restart is running. Before taking the queue it calls
    wait_ready() (at start, stops are reported while libvirt's states are still being read). The
    batches run on `spawn` (the daemon's work pool, which owns the thread); the runner ends when the
    queue is empty."""

    def __init__(self, restart, order, spawn, wait_ready=None):
        self._restart = restart
        self._spawn = spawn
        self._wait_ready = wait_ready or (lambda: None)
        self._order = list(order)  # config order, for stable commands and messages
        self._lock = threading.Lock()
        self._pending = set()
        self._running = False

    def add(self, name):
        with self._lock:
            self._pending.add(name)
            if self._running:
                return
            self._running = True
        self._spawn(self._run)

    def _run(self):
        while True:
            self._wait_ready()
            with self._lock:
                if not self._pending:
                    self._running = False
                    return
                names = [n for n in self._order if n in self._pending]
                self._pending.clear()
            self._restart(names)
