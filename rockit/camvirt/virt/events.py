"""Hand-off from libvirt's event thread.

libvirt's event loop thread also answers the keepalives of every remote connection: whatever blocks it
(a log daemon that hangs, a state file on a slow disk) becomes a dropped libvirt connection after a few
seconds. So that thread only records what happened (a state in the domain table, a plain value here)
and hands it to one dispatch thread, which runs the listeners in the order the events came (as nova's
virt/libvirt/host.py does with its event queue).
"""

import queue
import threading
import time
from collections import namedtuple

# A domain's state changed: what the listeners of the domain table receive.
StateChange = namedtuple('StateChange', ['name', 'old', 'new'])

STOP_TIMEOUT = 5


class Dispatch:
    """One thread, owned by whoever creates this, that runs handed-off calls one at a time, in order.
    A call that raises is logged in one line; it never ends the thread."""

    def __init__(self, log, name='libvirt-dispatch'):
        self._log = log
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    def start(self):
        if not self._started:
            self._started = True
            self._thread.start()

    def post(self, call, *args):
        """Queues call(*args); returns at once (safe on libvirt's thread: no lock held for long)."""
        self._queue.put((call, args))

    def flush(self, deadline):
        """Waits until everything posted before this call has run, or time.monotonic() passes
        deadline; returns whether it all ran. At once on the dispatch thread itself (it would wait on
        itself)."""
        if threading.current_thread() is self._thread or not self._started:
            return True
        done = threading.Event()
        self.post(done.set)
        return done.wait(max(0.0, deadline - time.monotonic()))

    def stop(self):
        """Runs what is queued, then ends the thread."""
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout=STOP_TIMEOUT)

    def _run(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            call, args = item
            try:
                call(*args)
            except Exception as e:  # a listener's bug must not stop every later event
                self._log.error('a libvirt event listener failed: {}: {}'.format(type(e).__name__, e))
