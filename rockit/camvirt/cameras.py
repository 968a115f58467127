"""The camera side: asking camera daemons (camd) for report_status(), each call bounded in time.

Connections to each camd are kept in a small pool and reused, so a dashboard query costs one round
trip instead of a TCP and Pyro handshake each time. A connection that failed or timed out is dropped:
after a timeout its stream may still hold the late reply.
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

    def _take(self, uri):
        with self._lock:
            idle = self._idle.get(uri)
            if idle:
                return idle.pop(), True
        proxy = Pyro4.Proxy(uri)
        proxy._pyroTimeout = self.timeout  # pylint: disable=protected-access
        return proxy, False

    def _give_back(self, uri, proxy):
        with self._lock:
            idle = self._idle.setdefault(uri, [])
            if len(idle) < MAX_IDLE_CONNECTIONS:
                idle.append(proxy)
                return
        proxy._pyroRelease()  # pylint: disable=protected-access

    def status(self, address):
        """camd's report_status() dict, or None when it does not answer properly within the timeout."""
        proxy, reused = self._take(address.uri)
        try:
            status = proxy.report_status()
        except Pyro4.errors.TimeoutError:
            proxy._pyroRelease()  # pylint: disable=protected-access
            return None
        except Pyro4.errors.CommunicationError:
            proxy._pyroRelease()  # pylint: disable=protected-access
            # A kept connection that camd closed (it restarted) says nothing of camd now: ask anew.
            return self.status(address) if reused else None
        except Exception:  # pylint: disable=broad-except
            # camd itself raised: to the dashboard that means "not answering" too.
            proxy._pyroRelease()  # pylint: disable=protected-access
            return None
        self._give_back(address.uri, proxy)
        return status if isinstance(status, dict) else None

    def forget(self, address):
        """Drops idle connections to a camd, e.g. when its VM stopped."""
        with self._lock:
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
