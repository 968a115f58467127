"""The libvirt side as the daemon sees it: one Hypervisor made of a connection that repairs itself
(connection.py), the configured domains' states with their waits and actions (domains.py), and the
dispatch thread their listeners and log lines run on (events.py), off libvirt's event thread
(eventloop.py). Nothing here polls libvirt: waiters block on one Condition that every event and every
connection change notifies."""

import threading

from .connection import Connection
from .domains import DomainTable
from .eventloop import start_event_loop
from .events import Dispatch


class Hypervisor:
    """Builds, starts and stops the libvirt side's parts in order; owns their threads (the connection's,
    the table's re-reads, the dispatch thread), all ended by stop()."""

    def __init__(self, uri, domain_names, log):
        cond = threading.Condition()
        self._dispatch = Dispatch(log)
        self._connection = Connection(uri, cond, self._dispatch, log)
        self._domains = DomainTable(domain_names, self._connection, cond, self._dispatch)
        self._connection.add_listener(self._domains)
        self.uri = uri

    def start(self):
        self._dispatch.start()
        start_event_loop()
        self._connection.start()

    def stop(self):
        self._domains.stop()
        self._connection.stop()
        self._dispatch.stop()

    def add_connection_listener(self, listener):
        """listener.connected(conn) on each new connection (after the domain states are read, before
        commands may use it) and listener.disconnected(conn) when it is let go; see Connection."""
        self._connection.add_listener(listener)

    def connection(self):
        """The libvirt connection in use, or None while libvirt is unreachable."""
        return self._connection.current()

    @property
    def last_error(self):
        """libvirt's own words for why it cannot be reached now (None while connected)."""
        return self._connection.last_error

    @property
    def stopping(self):
        """True once stop() was called (camvirtd is stopping): states are Unknown for that reason."""
        return self._domains.stopping

    @property
    def connected(self):
        return self._connection.current() is not None

    def wait_connected(self, deadline):
        """Blocks until connected or time.monotonic() passes deadline; returns whether connected."""
        return self._connection.wait_connected(deadline)

    def wait_settled(self, deadline):
        """Blocks until connected and every state change read so far has reached the listeners, or
        time.monotonic() passes deadline; returns whether both happened. At start, what the first
        reads found (every VM off after a host reboot) is then known to the listeners as a whole."""
        return self._connection.wait_connected(deadline) and self._dispatch.flush(deadline)

    # --- the domain table: see DomainTable for each -------------------------------------------------

    def add_listener(self, listener):
        self._domains.add_listener(listener)

    def states(self):
        return self._domains.states()

    def state(self, name):
        return self._domains.state(name)

    def stop_detail(self, name):
        return self._domains.stop_detail(name)

    def wait_for_state(self, name, wanted, deadline):
        return self._domains.wait_for_state(name, wanted, deadline)

    def wait_until_down(self, names, deadline):
        return self._domains.wait_until_down(names, deadline)

    def start_domain(self, name):
        self._domains.start_domain(name)

    def request_shutdown(self, name):
        self._domains.request_shutdown(name)

    def destroy_domain(self, name):
        self._domains.destroy_domain(name)
