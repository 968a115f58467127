"""camvirtd's wire methods (api.py) and the command path behind them (commands.py, steps.py, status.py),
called through Pyro4 over loopback TCP as the rockit clients call them, against libvirt's test driver
and simulated camds."""

import threading

import libvirt
import Pyro4.errors
import pytest

from testworld.support import deadline, wait_until
from rockit.camvirt.shared.constants import OFFLINE_CAMERA_STATUS, CameraState, CommandStatus, VMState
from testworld.simcamd import ABSENT, HUNG


def libvirt_states(world):
    return [world.domain(name).isActive() for name in world.domain_names]


def test_initialize_starts_every_domain_and_waits_for_every_camera(make_world):
    world = make_world(domains=2, cameras_per_domain=2)
    assert world.call('initialize') == CommandStatus.Succeeded
    assert libvirt_states(world) == [True, True]
    for camera_id in world.config.cameras:
        status = world.call('report_camera_status', camera_id)
        assert status['vm_active'] is True
        assert status['state'] == CameraState.Idle
        assert status['camera_id'] == camera_id
    assert 'initialize ({}) succeeded'.format(', '.join(world.domain_names)) in world.log.text()


def test_initialize_leaves_running_domains_alone_and_succeeds_again(make_world):
    world = make_world(domains=2)
    world.domain(world.domain_names[0]).create()
    assert world.call('initialize') == CommandStatus.Succeeded
    assert world.call('initialize') == CommandStatus.Succeeded
    assert libvirt_states(world) == [True, True]


def test_initialize_fails_after_timeout_when_a_camd_never_appears(make_world):
    world = make_world(domains=2, behaviours={'c2a': ABSENT}, initialize_timeout=1)
    assert world.call('initialize') == CommandStatus.Failed
    assert libvirt_states(world) == [True, True]
    log = world.log.text()
    assert 'camera c2a (camd_c2a at 127.0.0.1:' in log and 'did not answer within 1 s' in log
    assert 'c1a' not in log.split('initialize failed')[0].split('requested')[-1]
    last = world.call('report_status')['last_command']
    assert last['status'] == CommandStatus.Failed and [p for p in last['problems'] if 'c2a' in p]


def test_initialize_fails_naming_a_hung_camd(make_world):
    world = make_world(domains=2, behaviours={'c1a': HUNG}, initialize_timeout=1)
    assert world.call('initialize') == CommandStatus.Failed
    assert 'camera c1a' in world.log.text()
    assert world.call('report_camera_status', 'c2a')['vm_active'] is True


def test_shutdown_stops_every_domain(make_world):
    world = make_world(domains=3)
    assert world.call('initialize') == CommandStatus.Succeeded
    assert world.call('shutdown') == CommandStatus.Succeeded
    assert libvirt_states(world) == [False, False, False]
    assert world.call('report_camera_status', 'c1a') == OFFLINE_CAMERA_STATUS
    states = {d['name']: d['state'] for d in world.call('report_status')['domains']}
    assert set(states.values()) == {VMState.ShutOff}


def test_shutdown_with_everything_off_succeeds(make_world):
    world = make_world(domains=1)
    assert world.call('shutdown') == CommandStatus.Succeeded


@pytest.mark.parametrize('method', ['initialize', 'shutdown'])
def test_commands_from_a_machine_not_in_control_machines_are_refused(make_world, method):
    world = make_world(domains=2, control_machines=['Elsewhere'])
    world.domain(world.domain_names[1]).create()
    before = libvirt_states(world)
    assert world.call(method) == CommandStatus.InvalidControlIP
    assert libvirt_states(world) == before
    assert 'refused {} from 127.0.0.1'.format(method) in world.log.text()


def test_a_command_while_another_runs_is_blocked(make_world):
    world = make_world(domains=2, behaviours={'c2a': ABSENT}, initialize_timeout=3)
    results = []
    first = threading.Thread(target=lambda: results.append(world.call('initialize')))
    first.start()
    assert wait_until(lambda: world.call('report_status')['command'] == 'initialize')
    assert world.call('shutdown') == CommandStatus.Blocked
    assert world.call('initialize') == CommandStatus.Blocked
    # While a command runs the dashboard is told the camera is offline.
    assert world.call('report_camera_status', 'c1a') == OFFLINE_CAMERA_STATUS
    first.join(10)
    assert results == [CommandStatus.Failed]
    assert world.call('shutdown') == CommandStatus.Succeeded


def test_report_camera_status_for_a_vm_that_is_off(make_world):
    world = make_world(domains=1)
    assert world.call('report_camera_status', 'c1a') == OFFLINE_CAMERA_STATUS


def test_unknown_camera_id_is_a_clear_error_and_the_server_keeps_serving(make_world):
    world = make_world(domains=1)
    with pytest.raises(ValueError) as raised:
        world.call('report_camera_status', 'nosuchcam')
    assert "unknown camera id 'nosuchcam'" in str(raised.value)
    assert world.call('report_camera_status', 'c1a') == OFFLINE_CAMERA_STATUS


def test_hung_camd_is_bounded_and_holds_up_no_other_camera(make_world):
    world = make_world(domains=2, behaviours={'c1a': HUNG}, camera_timeout=1.0, initialize_timeout=1)
    world.call('initialize')
    hung_replies = []
    hung = threading.Thread(target=lambda: hung_replies.append(world.call('report_camera_status', 'c1a')))
    hung.start()
    assert wait_until(lambda: world.simulator.camds(world.domain_names[0])[0].connections() > 0)
    # The other camera answers while the hung query is still waiting for its camd.
    assert world.call('report_camera_status', 'c2a')['state'] == CameraState.Idle
    assert hung.is_alive()
    hung.join()
    assert hung_replies == [OFFLINE_CAMERA_STATUS]
    # A client with a 3 s timeout (under Pyro's default 5 s) still gets the offline reply.
    assert world.call('report_camera_status', 'c1a', timeout=3) == OFFLINE_CAMERA_STATUS


def test_vm_destroyed_behind_our_back_shows_off(make_world):
    world = make_world(domains=2)
    assert world.call('initialize') == CommandStatus.Succeeded
    world.domain(world.domain_names[0]).destroy()
    assert wait_until(lambda: world.call('report_status')['domains'][0]['state'] == VMState.ShutOff)
    assert world.call('report_camera_status', 'c1a') == OFFLINE_CAMERA_STATUS
    assert world.call('report_camera_status', 'c2a')['vm_active'] is True


def test_missing_domain_shows_in_status_and_fails_initialize(make_world, conn):
    world = make_world(domains=2, create_domains=False)
    from testworld.support import define_test_domain
    define_test_domain(conn, world.domain_names[1])
    assert wait_until(lambda: [d['state'] for d in world.call('report_status')['domains']]
                      == [VMState.Missing, VMState.ShutOff])
    assert world.call('initialize') == CommandStatus.Failed
    assert 'domain {} does not exist in libvirt'.format(world.domain_names[0]) in world.log.text()
    assert world.domain(world.domain_names[1]).isActive()


def test_initialize_and_shutdown_single_domains(make_world):
    world = make_world(domains=2)
    first, second = world.domain_names
    assert world.call('initialize', [second]) == CommandStatus.Succeeded
    assert libvirt_states(world) == [False, True]
    assert world.call('initialize', ['nosuch']) == CommandStatus.UnknownDomain
    assert world.call('shutdown', [first, 'nosuch']) == CommandStatus.UnknownDomain
    assert libvirt_states(world) == [False, True]
    assert world.call('shutdown', second) == CommandStatus.Succeeded
    assert libvirt_states(world) == [False, False]
    for nonsense in (5, {'a': 1}, [first, {'a': 1}], [None]):
        assert world.call('initialize', nonsense) == CommandStatus.UnknownDomain
    assert libvirt_states(world) == [False, False]


def test_report_status_lists_domains_and_cameras(make_world):
    world = make_world(domains=2, cameras_per_domain=2)
    world.call('initialize', [world.domain_names[0]])
    status = world.call('report_status')
    assert status['libvirt_connected'] is True
    assert status['command'] is None
    first, second = status['domains']
    assert (first['state'], second['state']) == (VMState.Running, VMState.ShutOff)
    assert [c['label'] for c in first['cameras']] == ['IDLE', 'IDLE']
    assert [c['label'] for c in second['cameras']] == ['OFFLINE', 'OFFLINE']
    assert first['since'].endswith('+00:00')


def test_commands_fail_cleanly_while_libvirt_is_unreachable(make_world, tmp_path):
    uri = 'test+unix:///default?socket={}'.format(tmp_path / 'no-libvirt-sock')
    world = make_world(domains=1, libvirt_uri=uri)
    assert world.call('initialize') == CommandStatus.Failed
    assert world.call('shutdown') == CommandStatus.Failed
    status = world.call('report_status')
    assert status['libvirt_connected'] is False
    assert status['domains'][0]['state'] == VMState.Unknown
    assert 'is unreachable' in world.log.text()


def test_a_client_that_goes_away_mid_command_does_not_hurt_the_daemon(make_world):
    world = make_world(domains=1, behaviours={'c1a': ABSENT}, initialize_timeout=1)
    with pytest.raises(Pyro4.errors.TimeoutError):
        world.call('initialize', timeout=0.2)
    assert wait_until(lambda: world.call('report_status')['command'] is None, seconds=5)
    assert world.call('shutdown') == CommandStatus.Succeeded
    assert not world.domain(world.domain_names[0]).isActive()


def test_a_paused_domain_is_resumed(make_world):
    world = make_world(domains=1)
    dom = world.domain(world.domain_names[0])
    dom.create()
    dom.suspend()
    assert world.call('initialize') == CommandStatus.Succeeded
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING


def test_forced_shutdown_powers_off_what_ignores_the_request(make_world):
    """A paused guest cannot act on the power button: the nearest the test driver has to a guest
    that ignores it."""
    world = make_world(domains=2, shutdown_timeout=1)
    assert world.call('initialize') == CommandStatus.Succeeded
    world.domain(world.domain_names[0]).suspend()
    # camvirtd must know it paused before it is asked to shut down, or it would ask it to.
    assert world.hypervisor.wait_for_state(world.domain_names[0], {VMState.Paused}, deadline(5)) == VMState.Paused
    assert world.call('shutdown') == CommandStatus.Failed
    assert libvirt_states(world) == [True, False]
    assert 'domain {} is still paused after 1 s'.format(world.domain_names[0]) in world.log.text()
    assert world.call('shutdown', None, True) == CommandStatus.Succeeded
    assert libvirt_states(world) == [False, False]
    assert 'warning: shutdown: forced power-off of domain {}: still paused after 1 s'.format(
        world.domain_names[0]) in world.log.text()


def test_a_domain_that_stops_behind_our_back_is_reported(make_world):
    world = make_world(domains=2)
    assert world.call('initialize') == CommandStatus.Succeeded
    world.domain(world.domain_names[1]).destroy()
    assert wait_until(lambda: world.call('report_status')['domains'][1]['unexpected_stop'] is not None)
    stop = world.call('report_status')['domains'][1]['unexpected_stop']
    assert stop['state'] == VMState.ShutOff and stop['time'].endswith('+00:00')
    assert 'error: domain {} stopped unexpectedly'.format(world.domain_names[1]) in world.log.text()
    # A shutdown is expected to stop domains: no report then.
    assert world.call('shutdown', [world.domain_names[0]]) == CommandStatus.Succeeded
    assert world.call('report_status')['domains'][0]['unexpected_stop'] is None
    # A successful initialize clears the record.
    assert world.call('initialize') == CommandStatus.Succeeded
    assert world.call('report_status')['domains'][1]['unexpected_stop'] is None


def test_restart_crashed_restarts_within_the_hourly_budget(make_world, conn):
    world = make_world(domains=1, extra_config={'restart_crashed': True, 'restart_crashed_per_hour': 1})
    assert world.call('initialize') == CommandStatus.Succeeded
    dom = world.domain(world.domain_names[0])
    dom.destroy()
    succeeded = 'initialize ({}) succeeded'.format(world.domain_names[0])
    assert wait_until(lambda: world.log.text().count(succeeded) == 2)
    assert 'initialize ({}) requested by camvirtd'.format(world.domain_names[0]) in world.log.text()
    assert dom.isActive()
    assert wait_until(lambda: world.call('report_status')['command'] is None)
    assert world.call('report_camera_status', 'c1a')['vm_active'] is True
    dom.destroy()
    assert wait_until(lambda: 'not restarting domain {}: 1 automatic restarts in the last hour'.format(
        world.domain_names[0]) in world.log.text())
    assert not dom.isActive()


def test_while_a_command_runs_only_its_own_cameras_read_offline(make_world):
    world = make_world(domains=2, behaviours={'c2a': ABSENT}, initialize_timeout=2)
    first, second = world.domain_names
    assert world.call('initialize', [first]) == CommandStatus.Succeeded
    results = []
    command = threading.Thread(target=lambda: results.append(world.call('initialize', [second])))
    command.start()
    try:
        assert wait_until(lambda: world.call('report_status')['command'] == 'initialize')
        assert world.call('report_camera_status', 'c1a')['vm_active'] is True
        assert world.call('report_camera_status', 'c2a') == OFFLINE_CAMERA_STATUS
        # The lock stays global: a command for the other domain is blocked, as opsd expects.
        assert world.call('shutdown', [first]) == CommandStatus.Blocked
    finally:
        command.join(10)
    assert results == [CommandStatus.Failed]


def test_a_crash_restart_waits_for_the_running_command_instead_of_giving_up(make_world):
    world = make_world(domains=2, shutdown_timeout=1,
                       extra_config={'restart_crashed': True, 'restart_crashed_per_hour': 3})
    first, second = world.domain_names
    assert world.call('initialize') == CommandStatus.Succeeded
    world.domain(second).suspend()  # a paused guest ignores the shutdown request: the command runs 1 s
    assert world.hypervisor.wait_for_state(second, {VMState.Paused}, deadline(5)) == VMState.Paused
    command = threading.Thread(target=world.call, args=('shutdown', [second]))
    command.start()
    try:
        assert wait_until(lambda: world.call('report_status')['command'] == 'shutdown')
        world.domain(first).destroy()
    finally:
        command.join(10)
    restarted = 'initialize ({}) succeeded'.format(first)
    assert wait_until(lambda: restarted in world.log.text(), seconds=10), world.log.text()
    log = world.log.text()
    assert 'not restarting' not in log
    assert log.index('shutdown ({}) failed'.format(second)) < log.rindex(restarted)
    assert world.domain(first).isActive()


def test_a_vm_that_stops_while_initialize_waits_on_others_fails_the_command_and_is_reported(make_world):
    world = make_world(domains=2, behaviours={'c2a': ABSENT}, initialize_timeout=2)
    first, second = world.domain_names
    assert world.call('initialize', [first]) == CommandStatus.Succeeded  # first should run from now on
    results = []
    command = threading.Thread(target=lambda: results.append(world.call('initialize')))
    command.start()
    try:
        # Past the start step (both domains started in parallel, the second from off: the slower), so
        # that the command does not simply start the first again: it waits on the second's camera now.
        assert wait_until(lambda: world.call('report_status')['domains'][1]['state'] == 'running')
        world.domain(first).destroy()  # its camera answered long ago: only its VM stops
    finally:
        command.join(10)
    assert results == [CommandStatus.Failed]
    problems = world.call('report_status')['last_command']['problems']
    assert 'domain {} is shut off: it stopped after its cameras answered'.format(first) in problems
    # Its stop was the command's to watch while it ran; once it ended, camvirtd saw it.
    assert wait_until(lambda: world.call('report_status')['domains'][0]['unexpected_stop'] is not None)
    assert 'domain {} stopped unexpectedly'.format(first) in world.log.text()
