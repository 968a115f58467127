"""The libvirt side: event-to-state decisions, and a Hypervisor following the test driver's events."""

import libvirt
import pytest

from conftest import TEST_URI, ListLog, deadline, define_test_domain, remove_domain
from rockit.camvirt.constants import VMState
from rockit.camvirt.hypervisor import Hypervisor, state_after_event, state_from_info

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
    assert wait_state(hypervisor, present, VMState.ShutOff)


def test_actions_start_and_shut_down(conn, watched):
    hypervisor, (present, _absent) = watched
    assert wait_state(hypervisor, present, VMState.ShutOff)
    hypervisor.start_domain(present)
    assert wait_state(hypervisor, present, VMState.Running)
    # The test driver refuses the agent and ACPI flags; request_shutdown falls back to a plain one.
    hypervisor.request_shutdown(present)
    assert wait_state(hypervisor, present, VMState.ShutOff)
    hypervisor.start_domain(present)
    hypervisor.destroy_domain(present)
    assert wait_state(hypervisor, present, VMState.ShutOff)
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
        # The error is logged once, not on every retry.
        assert log.text().count('cannot connect') == 1
    finally:
        hypervisor.stop()
