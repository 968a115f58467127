"""One libvirt connection that repairs itself (as oVirt vdsm's libvirtconnection does): commands never
open their own. Its listeners (the domain table, passthrough devices) set up what they follow on each
new connection before commands may use it, and let go of it when it is lost."""

import threading
import time

import libvirt

from ..shared.errors import CamvirtError

RECONNECT_MIN_DELAY = 0.25
RECONNECT_MAX_DELAY = 5.0
# Remote connections (libvirtd sockets): a ping every 2 s, dropped after 3 unanswered, so a hung
# libvirtd closes the connection in about 8 s instead of blocking calls forever.
KEEPALIVE_INTERVAL = 2
KEEPALIVE_COUNT = 3

_CLOSE_REASONS = {
    libvirt.VIR_CONNECT_CLOSE_REASON_ERROR: 'an error on the connection',
    libvirt.VIR_CONNECT_CLOSE_REASON_EOF: 'libvirtd closed the connection',
    libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE: 'libvirtd stopped answering keepalives',
    libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT: 'closed by camvirtd',
}


class HypervisorUnavailable(CamvirtError):
    """libvirt cannot be reached now."""


def close_reason(reason):
    return _CLOSE_REASONS.get(reason, 'close reason {}'.format(reason))


class Connection:
    """The connection in use (None while libvirt is unreachable) and the thread that keeps it, ended
    by stop(). Every change of it notifies `cond`, which the domain table's waiters share."""

    def __init__(self, uri, cond, dispatch, log):
        self.uri = uri
        self._cond = cond
        self._dispatch = dispatch
        self._log = log
        self._listeners = []
        self._conn = None  # the connection commands use
        self._connecting = None  # a connection being set up, not yet in use
        self._closed = threading.Event()
        self._stopping = threading.Event()
        self._last_error = None
        self._thread = threading.Thread(target=self._keep_connected, name='libvirt-connection', daemon=True)

    def add_listener(self, listener):
        """listener.connected(conn) is called on each new connection, in the order added (on the
        connection thread, before commands may use it; when it raises, the connection is given up and
        tried again), and listener.disconnected(conn) when that connection is let go."""
        self._listeners.append(listener)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stopping.set()
        self._closed.set()
        self._thread.join(timeout=5)
        with self._cond:
            conn, self._conn = self._conn, None
            self._cond.notify_all()
        if conn is not None:
            self._let_go(conn, self._listeners)

    def current(self):
        """The libvirt connection in use, or None while libvirt is unreachable."""
        with self._cond:
            return self._conn

    @property
    def last_error(self):
        """libvirt's own words for why it cannot be reached now (None while connected)."""
        with self._cond:
            return None if self._conn is not None else self._last_error

    def require(self):
        """The connection in use; HypervisorUnavailable while there is none."""
        conn = self.current()
        if conn is None:
            raise self.unavailable()
        return conn

    def wait_connected(self, deadline):
        """Blocks until connected or time.monotonic() passes deadline; returns whether connected."""
        with self._cond:
            return self._cond.wait_for(lambda: self._conn is not None,
                                       timeout=max(0.0, deadline - time.monotonic()))

    def unavailable(self):
        return HypervisorUnavailable('libvirt at {} is unreachable'.format(self.uri))

    # --- keeping it ----------------------------------------------------------------------------------

    def _keep_connected(self):
        delay = RECONNECT_MIN_DELAY
        while not self._stopping.is_set():
            try:
                conn = self._connect()
            except libvirt.libvirtError as e:
                self._note_connect_failure(str(e))
                self._stopping.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
                continue
            delay = RECONNECT_MIN_DELAY
            self._closed.wait()
            self._forget(conn)

    def _connect(self):
        """Opens a connection and lets every listener set up on it; only then do commands use it. A
        connection that fails half-way is let go by the listeners that had it, and closed."""
        self._closed.clear()
        conn = libvirt.open(self.uri)
        self._connecting, ready = conn, []
        try:
            try:
                conn.setKeepAlive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
            except libvirt.libvirtError:
                pass  # in-process drivers (test:///default) have no keepalive and need none
            conn.registerCloseCallback(self._on_close, conn)
            for listener in self._listeners:
                listener.connected(conn)
                ready.append(listener)
        except BaseException:
            self._connecting = None
            self._let_go(conn, ready)
            raise
        with self._cond:
            self._conn, self._connecting = conn, None
            self._cond.notify_all()
        if self._last_error is not None:
            self._dispatch.post(self._log.info, 'reconnected to libvirt at {}'.format(self.uri))
        self._last_error = None
        return conn

    def _note_connect_failure(self, message):
        if message != self._last_error:
            self._dispatch.post(self._log.error, 'cannot connect to libvirt at {}: {}'.format(self.uri, message))
        self._last_error = message

    def _forget(self, conn):
        with self._cond:
            if self._conn is conn:
                self._conn = None
            self._cond.notify_all()
        self._let_go(conn, self._listeners)

    def _let_go(self, conn, listeners):
        for listener in reversed(listeners):
            listener.disconnected(conn)
        for step in (conn.unregisterCloseCallback, conn.close):
            try:
                step()
            except libvirt.libvirtError:
                pass  # it may be dead already

    def _on_close(self, _conn, reason, closed):
        """On libvirt's event thread. `closed` is the connection this callback was registered on: only
        the one in use (or being set up) matters; a late close of an earlier one must not tear down a
        healthy connection."""
        if closed is not self._conn and closed is not self._connecting:
            return
        if not self._stopping.is_set():
            self._last_error = 'connection closed: {}'.format(close_reason(reason))
            self._dispatch.post(self._log.error, 'lost connection to libvirt at {} ({}); reconnecting'.format(
                self.uri, close_reason(reason)))
        self._closed.set()
