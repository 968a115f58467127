"""The configured domains' states, kept from libvirt's lifecycle events (no polling), the waits on
them, and what camvirtd does to a domain.

The lifecycle callback runs on libvirt's event thread: it only records the new state under a short
lock and hands the change to the dispatch thread (events.py), where the listeners run."""

import concurrent.futures
import time
from collections import namedtuple

import libvirt

from ..shared.constants import VMState
from .events import StateChange

# since: when the state began; seen: True when camvirtd only knows since when it has seen it (its first
# look at the domain), not when it began; detail: how the domain came to be off (libvirt's stop detail).
DomainStatus = namedtuple('DomainStatus', ['state', 'since', 'seen', 'detail'], defaults=(False, None))

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

# libvirt's word on how a domain stopped, from a STOPPED event's detail or a shut-off state's reason.
_STOP_EVENT_DETAILS = {
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: 'shut down from inside the guest',
    libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED: 'destroyed (powered off through libvirt)',
    libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED: 'crashed',
    libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED: 'migrated to another host',
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED: 'saved to a file',
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED: 'failed (its emulator ended)',
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT: 'reverted to a snapshot',
}
_SHUTOFF_REASONS = {
    libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN: 'shut down from inside the guest',
    libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED: 'destroyed (powered off through libvirt)',
    libvirt.VIR_DOMAIN_SHUTOFF_CRASHED: 'crashed',
    libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED: 'migrated to another host',
    libvirt.VIR_DOMAIN_SHUTOFF_SAVED: 'saved to a file',
    libvirt.VIR_DOMAIN_SHUTOFF_FAILED: 'failed to start',
    libvirt.VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT: 'reverted to a snapshot',
}


def stop_detail_of_event(event, detail):
    """libvirt's stop detail in words for a lifecycle event, None when it is no stop."""
    if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
        return _STOP_EVENT_DETAILS.get(detail)
    if event == libvirt.VIR_DOMAIN_EVENT_CRASHED:
        return 'crashed (the guest panicked)'
    return None


def stop_detail_of_info(state, reason):
    """The same for a dom.state() result."""
    if state == libvirt.VIR_DOMAIN_SHUTOFF:
        return _SHUTOFF_REASONS.get(reason)
    if state == libvirt.VIR_DOMAIN_CRASHED:
        return 'crashed (the guest panicked)'
    return None


_CRASH_STOP_DETAILS = (libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED, libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED)
_CRASH_SHUTOFF_REASONS = (libvirt.VIR_DOMAIN_SHUTOFF_CRASHED, libvirt.VIR_DOMAIN_SHUTOFF_FAILED)

# Error codes with which a driver refuses shutdownFlags() flags it does not implement.
_UNSUPPORTED_FLAG_ERRORS = (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT,
                            libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED, libvirt.VIR_ERR_OPERATION_UNSUPPORTED)


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


class DomainTable:
    """The states of the domains named in the config, on the connection `connection` keeps. A listener
    of that connection (connected/disconnected). Owns one thread, ended by stop(), that re-reads a
    domain's state when an event does not tell it (a libvirt call on the event thread would wait on
    the loop itself)."""

    def __init__(self, names, connection, cond, dispatch):
        self._names = list(names)
        self._connection = connection
        self._cond = cond
        self._dispatch = dispatch
        self._listeners = []
        self._callback = None  # (connection, lifecycle callback id)
        self._stopping = False
        now = time.time()
        # Unknown until the first read, and whenever libvirt is unreachable.
        self._states = {name: DomainStatus(VMState.Unknown, now, True) for name in self._names}
        self._before_unknown = {}  # name -> DomainStatus: the state last known before libvirt went
        # Counts events per domain so that a state read cannot overwrite a newer event.
        self._event_counts = {name: 0 for name in self._names}
        self._refresher = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='libvirt-refresh')

    def add_listener(self, listener):
        """listener(name, old state, new state) is called after each state change, in order, on the
        dispatch thread: never on libvirt's event thread, never with a lock of ours held."""
        self._listeners.append(listener)

    @property
    def stopping(self):
        """True once stop() was called: every state is Unknown from then on, as camvirtd stops."""
        return self._stopping

    def stop(self):
        """Before the connection is let go: its last changes (every state Unknown) are not reported."""
        self._stopping = True
        self._refresher.shutdown(wait=True)

    # --- the connection's listener -----------------------------------------------------------------

    def connected(self, conn):
        """Subscribes to the new connection's lifecycle events, then reads every state."""
        callback_id = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                  self._on_lifecycle, None)
        self._callback = (conn, callback_id)
        try:
            for name in self._names:
                self._refresh(conn, name, True)
        except BaseException:
            self._unsubscribe(conn)  # a connection given up half-way keeps no callback of ours
            raise

    def disconnected(self, conn):
        self._unsubscribe(conn)
        with self._cond:
            changes = [self._set_state(name, VMState.Unknown) for name in self._names]
        if not self._stopping:
            self._report(changes)

    def _unsubscribe(self, conn):
        if self._callback is not None and self._callback[0] is conn:
            _, callback_id = self._callback
            self._callback = None
            try:
                conn.domainEventDeregisterAny(callback_id)
            except libvirt.libvirtError:
                pass  # the connection is dead already

    # --- libvirt's event thread --------------------------------------------------------------------

    def _on_lifecycle(self, conn, dom, event, detail, _opaque):
        name = dom.name()
        with self._cond:
            if name not in self._states:
                return
            self._event_counts[name] += 1
            state = state_after_event(self._states[name].state, event, detail)
            change = None if state is None else self._set_state(name, state,
                                                                detail=stop_detail_of_event(event, detail))
        if state is None:
            try:
                self._refresher.submit(self._refresh_quietly, conn, name, False)
            except RuntimeError:
                pass  # stopping: nobody needs the state any more
        self._report([change])

    # --- state ---------------------------------------------------------------------------------------

    def _set_state(self, name, state, seen=False, detail=None):
        """Records a state; caller holds the condition. Returns a StateChange or None. `seen`: the
        state was read on a first look, so it began at some unknown time before now; when it is the
        state last known before libvirt went out of reach, that one's time is kept."""
        current = self._states[name]
        self._cond.notify_all()
        if current.state == state:
            return None
        previous = self._before_unknown.pop(name, None)
        if state == VMState.Unknown:
            self._before_unknown[name] = current
        if seen and previous is not None and previous.state == state:
            self._states[name] = previous
        else:
            self._states[name] = DomainStatus(state, time.time(), seen, detail)
        return StateChange(name, current.state, state)

    def _report(self, changes):
        for change in changes:
            if change is not None:
                self._dispatch.post(self._deliver, change)

    def _deliver(self, change):
        for listener in self._listeners:
            listener(*change)

    def _refresh(self, conn, name, seen):
        """Reads one domain's state from libvirt, unless an event overtook the read."""
        with self._cond:
            count = self._event_counts[name]
        detail = None
        try:
            info = conn.lookupByName(name).state()
            state, detail = state_from_info(*info), stop_detail_of_info(*info)
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
            state = VMState.Missing
        with self._cond:
            change = self._set_state(name, state, seen, detail) if self._event_counts[name] == count else None
        self._report([change])

    def _refresh_quietly(self, conn, name, seen):
        try:
            self._refresh(conn, name, seen)
        except libvirt.libvirtError:
            pass  # the connection went: reconnecting reads every state again

    def states(self):
        """{domain name: DomainStatus}; every state is Unknown while libvirt is unreachable."""
        with self._cond:
            return dict(self._states)

    def state(self, name):
        with self._cond:
            return self._states[name].state

    def stop_detail(self, name):
        """How the domain came to be off, in libvirt's words ('destroyed ...'), or None."""
        with self._cond:
            return self._states[name].detail

    # --- waits: each returns what it found at its one deadline ------------------------------------

    def wait_for_state(self, name, wanted, deadline):
        """Blocks until domain `name` is in one of the states `wanted` or time.monotonic() passes
        deadline. Returns its state then; raises HypervisorUnavailable when libvirt goes away."""
        with self._cond:
            self._cond.wait_for(lambda: self._gone() or self._states[name].state in wanted,
                                timeout=max(0.0, deadline - time.monotonic()))
            self._raise_if_gone()
            return self._states[name].state

    def wait_until_down(self, names, deadline):
        """Blocks until none of `names` is up (VMState.UP) or time.monotonic() passes deadline.
        Returns {name: state} of those still up (empty: all are down); raises HypervisorUnavailable
        when libvirt goes away."""
        def still_up():
            return {n: self._states[n].state for n in names if self._states[n].state in VMState.UP}
        with self._cond:
            self._cond.wait_for(lambda: self._gone() or not still_up(),
                                timeout=max(0.0, deadline - time.monotonic()))
            self._raise_if_gone()
            return still_up()

    def _gone(self):
        return self._connection.current() is None

    def _raise_if_gone(self):
        if self._gone():
            raise self._connection.unavailable()

    # --- actions (may block while libvirt works; callers bound them) ------------------------------

    def _domain(self, name):
        return self._connection.require().lookupByName(name)

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
        the driver refuses those flags (libvirt's test driver does). A domain that stopped between the
        caller's look and this request is left alone."""
        dom = self._domain(name)
        try:
            _ask_to_shut_down(dom)
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                raise

    def destroy_domain(self, name):
        """Pulls the plug: the guest stops at once, without shutting down."""
        self._domain(name).destroy()


def _ask_to_shut_down(dom):
    flags = libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT | libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN
    try:
        dom.shutdownFlags(flags)
    except libvirt.libvirtError as e:
        if e.get_error_code() not in _UNSUPPORTED_FLAG_ERRORS:
            raise
        dom.shutdown()
