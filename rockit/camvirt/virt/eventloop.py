"""libvirt's default event loop on one thread of its own, for the whole process (as libvirt-python's
examples/event-test.py runs it). libvirt allows one implementation per process, registered before any
connection opens; that thread only records what happens (see events.py)."""

import threading

import libvirt


class _EventLoop:
    def __init__(self):
        self._lock = threading.Lock()
        self._registered = False
        self._thread = None
        self._stopping = False

    def start(self):
        with self._lock:
            if not self._registered:
                libvirt.registerErrorHandler(_ignore_libvirt_error, None)
                libvirt.virEventRegisterDefaultImpl()
                self._registered = True
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name='libvirt-events', daemon=True)
                self._thread.start()

    def stop(self):
        """Ends the loop thread: a timer that fires at once wakes it to see the flag."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self._stopping = True
            libvirt.virEventAddTimeout(0, _remove_timer, None)
        thread.join(timeout=5)

    def _run(self):
        while not self._stopping:
            libvirt.virEventRunDefaultImpl()


def _remove_timer(timer, _opaque):
    libvirt.virEventRemoveTimeout(timer)


def _ignore_libvirt_error(_context, _error):
    # libvirt prints every error to stderr unless a handler is registered; we report our own.
    pass


_event_loop = _EventLoop()


def start_event_loop():
    """Runs libvirt's event loop (once per process). Before any connection opens, or its events go
    nowhere."""
    _event_loop.start()


def stop_event_loop():
    """Stops the event loop thread; at process end, once no connection is left."""
    _event_loop.stop()
