"""The libvirt side: one connection that repairs itself, and each configured domain's state.

Domain states come from libvirt's lifecycle events, dispatched by libvirt's default event loop on a
thread of its own (as libvirt-python's examples/event-test.py does). Waiters block on a Condition that
every event and every connection change notifies, so nothing here polls libvirt. The Hypervisor owns
its connection and its repair (as oVirt vdsm's libvirtconnection does): commands never open their own.
"""

import concurrent.futures
import threading
import time
from collections import namedtuple

import libvirt

from ..shared.constants import VMState

RECONNECT_MIN_DELAY = 0.25
RECONNECT_MAX_DELAY = 5.0
# Remote connections (libvirtd sockets): a ping every 2 s, dropped after 3 unanswered, so a hung
# libvirtd closes the connection in about 8 s instead of blocking calls forever.
KEEPALIVE_INTERVAL = 2
KEEPALIVE_COUNT = 3

DomainStatus = namedtuple('DomainStatus', ['state', 'since'])

_STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: VMState.Unknown,
    libvirt.VIR_DOMAIN_RUNNING: VMState.Running,
    libvirt.VIR_DOMAIN_BLOCKED: VMState.Running,
    libvirt.VIR_DOMAIN_PAUSED: VMState.Paused,
    libvirt.VIR_DOMAIN_SHUTDOWN: VMState.ShuttingDown,
    libvirt.VIR_DOMAIN_SHUTOFF: VMState.ShutOff,
    libvirt.VIR_DOMAIN_CRASHED: VMState.Crashed,
    libvirt.VIR_DOMAIN_PMSUSPENDED: VMState.Suspended,
}

_EVENT_STATES = {
    libvirt.VIR_DOMAIN_EVENT_STARTED: VMState.Running,
    libvirt.VIR_DOMAIN_EVENT_RESUMED: VMState.Running,
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: VMState.Paused,
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: VMState.ShuttingDown,
    libvirt.VIR_DOMAIN_EVENT_STOPPED: VMState.ShutOff,
    libvirt.VIR_DOMAIN_EVENT_CRASHED: VMState.Crashed,
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: VMState.Suspended,
}
# Events that say nothing sure about whether the domain runs: a running domain can be defined again
# (its XML updated) or undefined (it runs on, transient). After them the state is read from libvirt.
_DEFINITION_EVENTS = (libvirt.VIR_DOMAIN_EVENT_DEFINED, libvirt.VIR_DOMAIN_EVENT_UNDEFINED)

_CRASH_STOP_DETAILS = (libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED, libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED)
_CRASH_SHUTOFF_REASONS = (libvirt.VIR_DOMAIN_SHUTOFF_CRASHED, libvirt.VIR_DOMAIN_SHUTOFF_FAILED)

# Error codes with which a driver refuses shutdownFlags() flags it does not implement.
_UNSUPPORTED_FLAG_ERRORS = (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT,
                            libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED, libvirt.VIR_ERR_OPERATION_UNSUPPORTED)


class HypervisorUnavailable(Exception):
    """libvirt cannot be reached now."""


def state_from_info(state, reason):
    """Our state name for a dom.state() result."""
    if state == libvirt.VIR_DOMAIN_SHUTOFF and reason in _CRASH_SHUTOFF_REASONS:
        return VMState.Crashed
    return _STATE_NAMES.get(state, VMState.Unknown)


def state_after_event(current, event, detail):
    """Our state name after a lifecycle event, given the state before it; None when the event does
    not tell and the state must be read from libvirt."""
    if event == libvirt.VIR_DOMAIN_EVENT_STOPPED and detail in _CRASH_STOP_DETAILS:
        return VMState.Crashed
    if event in _DEFINITION_EVENTS:
        return None
    return _EVENT_STATES.get(event, current)


_CLOSE_REASONS = {
    libvirt.VIR_CONNECT_CLOSE_REASON_ERROR: 'an error on the connection',
    libvirt.VIR_CONNECT_CLOSE_REASON_EOF: 'libvirtd closed the connection',
    libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE: 'libvirtd stopped answering keepalives',
    libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT: 'closed by camvirtd',
}


def close_reason(reason):
    return _CLOSE_REASONS.get(reason, 'close reason {}'.format(reason))


class _EventLoop:
    """libvirt's default event loop on one thread of its own, for the whole process (libvirt allows one
    implementation per process, registered before any connection opens)."""

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


class Hypervisor:
    """A self-healing libvirt connection and the states of the domains named in the config. Owns two
    threads, both ended by stop(): the one that keeps the connection, and one that re-reads a domain's
    state when an event does not tell it."""

    def __init__(self, uri, domain_names, log):
        self.uri = uri
        self._listeners = []
        self._connection_listeners = []  # e.g. devices.DevicePresence
        self._names = list(domain_names)
        self._log = log
        self._cond = threading.Condition()
        self._conn = None  # the connection commands use; None while libvirt is unreachable
        self._connecting = None  # a connection being set up, not yet in use
        self._callback_id = None  # the lifecycle callback of self._conn
        self._closed = threading.Event()
        self._stopping = threading.Event()
        self._last_error = None
        now = time.time()
        # Unknown until the first read, and whenever libvirt is unreachable.
        self._states = {name: DomainStatus(VMState.Unknown, now) for name in self._names}
        # Counts events per domain so that a state read cannot overwrite a newer event.
        self._event_counts = {name: 0 for name in self._names}
        self._thread = threading.Thread(target=self._keep_connected, name='libvirt-connection',
                                        daemon=True)
        # Not on the event loop's thread: a libvirt call there would wait on the loop itself.
        self._refresher = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='libvirt-refresh')

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self):
        start_event_loop()
        self._thread.start()

    def stop(self):
        self._stopping.set()
        self._closed.set()
        self._thread.join(timeout=5)
        self._refresher.shutdown(wait=True)
        with self._cond:
            conn, self._conn = self._conn, None
        if conn is not None:
            _close_quietly(conn, self._callback_id)

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
        """Opens a connection, subscribes to its events and reads every state; only then do commands
        use it. A connection that fails half-way is closed with its callbacks, never left behind."""
        self._closed.clear()
        conn = libvirt.open(self.uri)
        self._connecting, callback_id = conn, None
        try:
            try:
                conn.setKeepAlive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
            except libvirt.libvirtError:
                pass  # in-process drivers (test:///default) have no keepalive and need none
            conn.registerCloseCallback(self._on_close, conn)
            callback_id = conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None)
            for name in self._names:
                self._refresh(conn, name)
            # Listeners read what they follow (passthrough devices) before commands may run.
            for listener in self._connection_listeners:
                listener.connected(conn)
        except BaseException:
            self._connecting = None
            _close_quietly(conn, callback_id)
            raise
        with self._cond:
            self._conn, self._callback_id, self._connecting = conn, callback_id, None
            self._cond.notify_all()
        if self._last_error is not None:
            self._log.info('reconnected to libvirt at {}'.format(self.uri))
        self._last_error = None
        return conn

    def _note_connect_failure(self, message):
        if message != self._last_error:
            self._log.error('cannot connect to libvirt at {}: {}'.format(self.uri, message))
        self._last_error = message

    def _forget(self, conn):
        with self._cond:
            if self._conn is conn:
                self._conn = None
            changes = [self._set_state(name, VMState.Unknown) for name in self._names]
            callback_id, self._callback_id = self._callback_id, None
        for listener in self._connection_listeners:
            listener.disconnected(conn)
        _close_quietly(conn, callback_id)
        self._report(changes)

    # --- libvirt callbacks (on the event loop thread) ---------------------------------------------

    def _on_close(self, _conn, reason, closed):
        """`closed` is the connection this callback was registered on: only the one in use (or being
        set up) matters; a late close of an earlier one must not tear down a healthy connection."""
        if closed is not self._conn and closed is not self._connecting:
            return
        if not self._stopping.is_set():
            self._last_error = 'connection closed: {}'.format(close_reason(reason))
            self._log.error('lost connection to libvirt at {} ({}); reconnecting'.format(
                self.uri, close_reason(reason)))
        self._closed.set()

    def _on_lifecycle(self, conn, dom, event, detail, _opaque):
        name = dom.name()
        with self._cond:
            if name not in self._states:
                return
            self._event_counts[name] += 1
            state = state_after_event(self._states[name].state, event, detail)
            change = None if state is None else self._set_state(name, state)
        if state is None:
            try:
                self._refresher.submit(self._refresh_quietly, conn, name)
            except RuntimeError:
                pass  # stopping: nobody needs the state any more
        self._report([change])

    # --- state ----------------------------------------------------------------------------------

    def _set_state(self, name, state):
        """Records a state; caller holds the condition. Returns (name, old, new) or None."""
        old = self._states[name].state
        self._cond.notify_all()
        if old == state:
            return None
        self._states[name] = DomainStatus(state, time.time())
        return name, old, state

    def add_connection_listener(self, listener):
        """listener.connected(conn) is called on each new connection (on the connection
        thread, before commands may use it; it must not raise) and listener.disconnected(conn) when
        that connection is let go."""
        self._connection_listeners.append(listener)

    def connection(self):
        """The libvirt connection in use, or None while libvirt is unreachable."""
        with self._cond:
            return self._conn

    def add_listener(self, listener):
        """listener(name, old state, new state) is called after each state change, outside locks."""
        self._listeners.append(listener)

    def _report(self, changes):
        for change in changes:
            for listener in self._listeners:
                if change is not None:
                    listener(*change)

    def _refresh(self, conn, name):
        """Reads one domain's state from libvirt, unless an event overtook the read."""
        with self._cond:
            count = self._event_counts[name]
        try:
            state = state_from_info(*conn.lookupByName(name).state())
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
            state = VMState.Missing
        with self._cond:
            change = self._set_state(name, state) if self._event_counts[name] == count else None
        self._report([change])

    def _refresh_quietly(self, conn, name):
        try:
            self._refresh(conn, name)
        except libvirt.libvirtError:
            pass  # the connection went: reconnecting reads every state again

    @property
    def connected(self):
        with self._cond:
            return self._conn is not None

    def states(self):
        """{domain name: DomainStatus}; every state is Unknown while libvirt is unreachable."""
        with self._cond:
            return dict(self._states)

    def state(self, name):
        with self._cond:
            return self._states[name].state

    def wait_connected(self, deadline):
        """Blocks until connected or time.monotonic() passes deadline; returns whether connected."""
        with self._cond:
            return self._cond.wait_for(lambda: self._conn is not None,
                                       timeout=max(0.0, deadline - time.monotonic()))

    def wait_for_state(self, name, wanted, deadline):
        """Blocks until domain `name` is in one of the states `wanted` or time.monotonic() passes
        deadline. Returns its state then; raises HypervisorUnavailable when libvirt goes away."""
        with self._cond:
            self._cond.wait_for(lambda: self._conn is None or self._states[name].state in wanted,
                                timeout=max(0.0, deadline - time.monotonic()))
            self._raise_if_unreachable()
            return self._states[name].state

    def wait_until_down(self, names, deadline):
        """Blocks until none of `names` is up (VMState.UP) or time.monotonic() passes deadline.
        Returns {name: state} of those still up (empty: all are down); raises HypervisorUnavailable
        when libvirt goes away."""
        def still_up():
            return {n: self._states[n].state for n in names if self._states[n].state in VMState.UP}
        with self._cond:
            self._cond.wait_for(lambda: self._conn is None or not still_up(),
                                timeout=max(0.0, deadline - time.monotonic()))
            self._raise_if_unreachable()
            return still_up()

    def _raise_if_unreachable(self):
        if self._conn is None:
            raise HypervisorUnavailable('libvirt at {} is unreachable'.format(self.uri))

    # --- actions (may block while libvirt works; callers bound them) ----------------------------

    def _domain(self, name):
        with self._cond:
            conn = self._conn
        if conn is None:
            raise HypervisorUnavailable('libvirt at {} is unreachable'.format(self.uri))
        return conn.lookupByName(name)

    def start_domain(self, name):
        """Starts (or resumes, when paused) the domain. One that is already running, because someone
        started it a moment ago and its event is still on the way, is left alone."""
        dom = self._domain(name)
        state = dom.state()[0]
        if state == libvirt.VIR_DOMAIN_PAUSED:
            dom.resume()
        elif state in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED, libvirt.VIR_DOMAIN_NOSTATE):
            try:
                dom.create()
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID or not dom.isActive():
                    raise

    def request_shutdown(self, name):
        """Asks the guest to shut down: its agent, else the ACPI power button; a plain shutdown where
        the driver refuses those flags (libvirt's test driver does)."""
        dom = self._domain(name)
        flags = libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT | libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN
        try:
            dom.shutdownFlags(flags)
        except libvirt.libvirtError as e:
            if e.get_error_code() not in _UNSUPPORTED_FLAG_ERRORS:
                raise
            dom.shutdown()

    def destroy_domain(self, name):
        """Pulls the plug: the guest stops at once, without shutting down."""
        self._domain(name).destroy()


def _close_quietly(conn, callback_id):
    """Lets go of a connection that may already be dead."""
    steps = [conn.unregisterCloseCallback, conn.close]
    if callback_id is not None:
        steps.insert(0, lambda: conn.domainEventDeregisterAny(callback_id))
    for step in steps:
        try:
            step()
        except libvirt.libvirtError:
            pass
