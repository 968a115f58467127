"""The camera side: asking camera daemons (camd) for report_status(), each call bounded in time.

Connections to each camd are kept in a small pool and reused, so a dashboard query costs one round
trip instead of a TCP and Pyro handshake each time. A connection that failed or timed out is dropped:
after a timeout its stream may still hold the late reply. forget() (the VM stopped) drops a camd's
kept connections, and also those in use at that moment: they may reach a camd that is going away
(a stopped Pyro daemon goes on serving connections it already had, without its objects).
"""

import threading
import time

import Pyro4
import Pyro4.errors

# How often initialize() asks a camd that is not answering yet. A refused connection costs a few
# microseconds on loopback and one SYN on the network, and this bounds how late we notice readiness.
READINESS_RETRY_INTERVAL = 0.01
MAX_IDLE_CONNECTIONS = 8


class CameraProbe:
    """Calls camd report_status() with a timeout, reusing idle connections per camd."""

    def __init__(self, timeout):
        self.timeout = timeout
        self._lock = threading.Lock()
        self._idle = {}  # uri -> [Proxy]
        self._generation = {}  # uri -> how many times forget() was called for it

    def _take(self, uri):
        """(proxy, whether it is a kept connection, the camd's generation when taken)."""
        with self._lock:
            generation = self._generation.get(uri, 0)
            idle = self._idle.get(uri)
            if idle:
                return idle.pop(), True, generation
        proxy = Pyro4.Proxy(uri)
        proxy._pyroTimeout = self.timeout  # pylint: disable=protected-access
        return proxy, False, generation

    def _give_back(self, uri, proxy, generation):
        with self._lock:
            idle = self._idle.setdefault(uri, [])
            if self._generation.get(uri, 0) == generation and len(idle) < MAX_IDLE_CONNECTIONS:
                idle.append(proxy)
                return
        proxy._pyroRelease()  # pylint: disable=protected-access

    def status(self, address):
        """camd's report_status() dict, or None when it does not answer properly within the timeout."""
        proxy, reused, generation = self._take(address.uri)
        try:
            status = proxy.report_status()
        except Pyro4.errors.TimeoutError:
            proxy._pyroRelease()  # pylint: disable=protected-access
            return None
        except Exception:  # pylint: disable=broad-except
            proxy._pyroRelease()  # pylint: disable=protected-access
            # A kept connection that fails (camd restarted, or it reaches the old camd's leftovers)
            # says nothing of camd now: ask anew. A new one that fails, or camd itself raising, means
            # "not answering" to the dashboard.
            return self.status(address) if reused else None
        self._give_back(address.uri, proxy, generation)
        return status if isinstance(status, dict) else None

    def forget(self, address):
        """Drops the connections to a camd, kept or in use, e.g. when its VM stopped."""
        with self._lock:
            self._generation[address.uri] = self._generation.get(address.uri, 0) + 1
            idle = self._idle.pop(address.uri, [])
        for proxy in idle:
            proxy._pyroRelease()  # pylint: disable=protected-access

    def close(self):
        with self._lock:
            pools, self._idle = list(self._idle.values()), {}
        for idle in pools:
            for proxy in idle:
                proxy._pyroRelease()  # pylint: disable=protected-access


def wait_until_answering(probe, address, deadline, give_up):
    """Asks one camd until it answers or time.monotonic() passes deadline, or give_up() is true.
    Returns True once it answered."""
    while not give_up():
        if probe.status(address) is not None:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(READINESS_RETRY_INTERVAL, remaining))
    return False
