"""The libvirt side: event-to-state decisions, and a Hypervisor following the test driver's events."""

import threading

import libvirt
import pytest

from rockit.camvirt.shared.constants import VMState
from rockit.camvirt.virt.connection import HypervisorUnavailable, close_reason
from rockit.camvirt.virt.domains import DomainTable, state_after_event, state_from_info
from rockit.camvirt.virt.hypervisor import Hypervisor
from testworld.support import TEST_URI, ListLog, deadline, define_test_domain, remove_domain, wait_until

L = libvirt


@pytest.mark.parametrize('current,event,detail,expected', [
    (VMState.ShutOff, L.VIR_DOMAIN_EVENT_STARTED, L.VIR_DOMAIN_EVENT_STARTED_BOOTED, VMState.Running),
    (VMState.Running, L.VIR_DOMAIN_EVENT_SHUTDOWN, L.VIR_DOMAIN_EVENT_SHUTDOWN_FINISHED, VMState.ShuttingDown),
    (VMState.Running, L.VIR_DOMAIN_EVENT_STOPPED, L.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN, VMState.ShutOff),
    (VMState.Running, L.VIR_DOMAIN_EVENT_STOPPED, L.VIR_DOMAIN_EVENT_STOPPED_DESTROYED, VMState.ShutOff),
    (VMState.Running, L.VIR_DOMAIN_EVENT_STOPPED, L.VIR_DOMAIN_EVENT_STOPPED_CRASHED, VMState.Crashed),
    (VMState.Running, L.VIR_DOMAIN_EVENT_STOPPED, L.VIR_DOMAIN_EVENT_STOPPED_FAILED, VMState.Crashed),
    (VMState.Running, L.VIR_DOMAIN_EVENT_SUSPENDED, 0, VMState.Paused),
    (VMState.Paused, L.VIR_DOMAIN_EVENT_RESUMED, 0, VMState.Running),
    # (Un)defining says nothing sure about running: the state is read from libvirt instead.
    (VMState.ShutOff, L.VIR_DOMAIN_EVENT_UNDEFINED, 0, None),
    (VMState.Missing, L.VIR_DOMAIN_EVENT_DEFINED, 0, None),
    (VMState.Unknown, L.VIR_DOMAIN_EVENT_DEFINED, 1, None),
])
def test_state_after_event(current, event, detail, expected):
    assert state_after_event(current, event, detail) == expected


@pytest.mark.parametrize('info,expected', [
    ((L.VIR_DOMAIN_RUNNING, 1), VMState.Running),
    ((L.VIR_DOMAIN_BLOCKED, 0), VMState.Running),
    ((L.VIR_DOMAIN_SHUTOFF, L.VIR_DOMAIN_SHUTOFF_SHUTDOWN), VMState.ShutOff),
    ((L.VIR_DOMAIN_SHUTOFF, L.VIR_DOMAIN_SHUTOFF_CRASHED), VMState.Crashed),
    ((L.VIR_DOMAIN_SHUTDOWN, 0), VMState.ShuttingDown),
    ((L.VIR_DOMAIN_PAUSED, 0), VMState.Paused),
    ((L.VIR_DOMAIN_NOSTATE, 0), VMState.Unknown),
])
def test_state_from_info(info, expected):
    assert state_from_info(*info) == expected


@pytest.fixture
def watched(conn):
    names = ['hv-a-{}'.format(id(conn) % 10000), 'hv-b-{}'.format(id(conn) % 10000)]
    define_test_domain(conn, names[0])
    log = ListLog()
    hypervisor = Hypervisor(TEST_URI, names, log)
    hypervisor.start()
    yield hypervisor, names
    hypervisor.stop()
    for name in names:
        remove_domain(conn, name)


def wait_state(hypervisor, name, state):
    assert hypervisor.wait_connected(deadline(5))
    return hypervisor.wait_for_state(name, {state}, deadline(5)) == state


def test_follows_lifecycle_events(conn, watched):
    hypervisor, (present, absent) = watched
    assert wait_state(hypervisor, present, VMState.ShutOff)
    assert wait_state(hypervisor, absent, VMState.Missing)
    assert hypervisor.states()[present].seen  # found so at the first look: since when is not known
    dom = conn.lookupByName(present)
    dom.create()
    assert wait_state(hypervisor, present, VMState.Running)
    since = hypervisor.states()[present].since
    dom.suspend()
    assert wait_state(hypervisor, present, VMState.Paused)
    assert hypervisor.states()[present].since >= since
    dom.resume()
    dom.destroy()
    assert wait_state(hypervisor, present, VMState.ShutOff)
    assert hypervisor.stop_detail(present) == 'destroyed (powered off through libvirt)'
    assert not hypervisor.states()[present].seen  # an event told when this state began
    define_test_domain(conn, absent)
    assert wait_state(hypervisor, absent, VMState.ShutOff)
    dom.undefine()
    assert wait_state(hypervisor, present, VMState.Missing)


def test_defining_or_undefining_a_running_domain_leaves_it_running(conn, watched):
    hypervisor, (present, _absent) = watched
    dom = conn.lookupByName(present)
    dom.create()
    assert wait_state(hypervisor, present, VMState.Running)
    conn.defineXML(dom.XMLDesc())  # its definition updated, as the sandbox does after a libvirtd restart
    dom.undefine()  # it runs on, transient
    assert hypervisor.wait_for_state(present, VMState.STOPPED, deadline(0.5)) == VMState.Running
    assert state_from_info(*dom.state()) == VMState.Running
    dom.destroy()
    # A destroyed transient domain is gone: its STOPPED event, then (when the undefine's re-read comes
    # after it) missing. Either says it no longer runs.
    stopped = {VMState.ShutOff, VMState.Missing}
    assert hypervisor.wait_for_state(present, stopped, deadline(5)) in stopped


def test_actions_start_and_shut_down(conn, watched):
    hypervisor, (present, _absent) = watched
    assert wait_state(hypervisor, present, VMState.ShutOff)
    hypervisor.start_domain(present)
    assert wait_state(hypervisor, present, VMState.Running)
    # The test driver refuses the agent and ACPI flags; request_shutdown falls back to a plain one.
    hypervisor.request_shutdown(present)
    assert wait_state(hypervisor, present, VMState.ShutOff)
    hypervisor.start_domain(present)
    assert wait_state(hypervisor, present, VMState.Running)
    assert conn.lookupByName(present).isActive()
    hypervisor.destroy_domain(present)
    assert wait_state(hypervisor, present, VMState.ShutOff)
    assert not conn.lookupByName(present).isActive()
    with pytest.raises(libvirt.libvirtError):
        hypervisor.start_domain('no-such-domain')


def test_unreachable_libvirt_is_reported_not_raised(tmp_path):
    log = ListLog()
    hypervisor = Hypervisor('test+unix:///default?socket={}'.format(tmp_path / 'sock'), ['x'], log)
    hypervisor.start()
    try:
        assert not hypervisor.wait_connected(deadline(0.5))
        assert hypervisor.states()['x'].state == VMState.Unknown
        assert 'cannot connect to libvirt' in log.text()
        assert 'No such file or directory' in hypervisor.last_error  # libvirt's own words, for status
        # The error is logged once, not on every retry.
        assert log.text().count('cannot connect') == 1
    finally:
        hypervisor.stop()


def test_a_half_built_connection_is_closed_and_the_next_one_used(conn, watched, monkeypatch):
    """The first state read fails half-way through connecting, as a libvirtd that goes away at that
    moment makes it; every later read is real."""
    _hypervisor, (present, _absent) = watched
    half_built, real_refresh = [], DomainTable._refresh

    def failing_first_read(table, libvirt_conn, name, seen):
        if not half_built:
            half_built.append(libvirt_conn)
            raise libvirt.libvirtError('libvirtd went away while its states were read')
        real_refresh(table, libvirt_conn, name, seen)
    monkeypatch.setattr(DomainTable, '_refresh', failing_first_read)
    hypervisor = Hypervisor(TEST_URI, [present], ListLog())
    hypervisor.start()
    try:
        assert hypervisor.wait_connected(deadline(5))
        (orphan,) = half_built
        # Closed: libvirt-python lets go of a closed connection's handle, so any call now fails.
        with pytest.raises(libvirt.libvirtError, match='invalid connection pointer'):
            orphan.getURI()
        assert hypervisor.wait_for_state(present, {VMState.ShutOff}, deadline(5)) == VMState.ShutOff
    finally:
        hypervisor.stop()


def test_a_close_callback_from_any_other_connection_is_ignored(conn):
    present, log = 'hv-close-{}'.format(id(conn) % 10000), ListLog()
    define_test_domain(conn, present)
    hypervisor = Hypervisor(TEST_URI, [present], log)
    hypervisor.start()
    earlier = libvirt.open(TEST_URI)
    try:
        assert hypervisor.wait_connected(deadline(5))
        # What libvirt calls when an earlier connection's keepalive finally times out.
        hypervisor._connection._on_close(earlier, libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE, earlier)
        assert hypervisor.connected
        assert hypervisor.wait_for_state(present, {VMState.Unknown}, deadline(0.3)) == VMState.ShutOff
    finally:
        earlier.close()
        hypervisor.stop()
        remove_domain(conn, present)
    assert 'lost connection' not in log.text()


def test_waits_return_what_they_found(conn, watched):
    hypervisor, (present, _absent) = watched
    assert hypervisor.wait_connected(deadline(5))
    assert hypervisor.wait_for_state(present, {VMState.Running}, deadline(0.2)) == VMState.ShutOff
    conn.lookupByName(present).create()
    assert hypervisor.wait_for_state(present, {VMState.Running}, deadline(5)) == VMState.Running
    assert hypervisor.wait_until_down([present], deadline(0.2)) == {present: VMState.Running}
    conn.lookupByName(present).destroy()
    assert hypervisor.wait_until_down([present], deadline(5)) == {}


def test_waits_raise_when_libvirt_is_unreachable(tmp_path):
    hypervisor = Hypervisor('test+unix:///default?socket={}'.format(tmp_path / 'sock'), ['x'], ListLog())
    hypervisor.start()
    try:
        with pytest.raises(HypervisorUnavailable):
            hypervisor.wait_for_state('x', {VMState.Running}, deadline(0.2))
        with pytest.raises(HypervisorUnavailable):
            hypervisor.wait_until_down(['x'], deadline(0.2))
    finally:
        hypervisor.stop()


def test_close_reasons_are_named():
    assert close_reason(libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE) == 'libvirtd stopped answering keepalives'
    assert close_reason(99) == 'close reason 99'


def test_a_listener_that_blocks_does_not_hold_up_libvirt_events(conn, watched):
    """Listeners run on a dispatch thread: one stuck on a slow disk leaves libvirt's event thread free
    (which also answers the keepalives of a remote libvirtd), so states keep following the domains."""
    hypervisor, (present, _absent) = watched
    assert wait_state(hypervisor, present, VMState.ShutOff)
    release, seen = threading.Event(), []

    def stuck_on_disk(name, old, new):
        seen.append((name, new))
        release.wait(20)
    hypervisor.add_listener(stuck_on_disk)
    try:
        dom = conn.lookupByName(present)
        dom.create()
        assert wait_state(hypervisor, present, VMState.Running)
        dom.destroy()
        assert wait_state(hypervisor, present, VMState.ShutOff)
        dom.create()
        assert wait_state(hypervisor, present, VMState.Running)
    finally:
        release.set()
    # Every change reaches the listener, in the order it happened.
    expected = [VMState.Running, VMState.ShutOff, VMState.Running]
    # (The first read's change, to shut off, may reach the listener after it was added, or before.)
    assert wait_until(lambda: [state for name, state in seen if name == present][-3:] == expected, 5)


def test_a_listener_that_raises_is_logged_and_later_changes_still_arrive(conn):
    present, log, seen = 'hv-raise-{}'.format(id(conn) % 10000), ListLog(), []
    define_test_domain(conn, present)
    hypervisor = Hypervisor(TEST_URI, [present], log)
    hypervisor.start()

    def broken(name, old, new):
        seen.append(new)
        if new == VMState.Running:
            raise ValueError('listener bug')
    hypervisor.add_listener(broken)
    try:
        assert wait_state(hypervisor, present, VMState.ShutOff)
        dom = conn.lookupByName(present)
        dom.create()
        dom.destroy()
        assert wait_until(lambda: seen[-2:] == [VMState.Running, VMState.ShutOff], 5)
    finally:
        hypervisor.stop()
        remove_domain(conn, present)
    assert ('error', 'a libvirt event listener failed: ValueError: listener bug') in log.lines
