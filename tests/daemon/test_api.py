"""camvirtd's wire methods (api.py) and the command path behind them (commands.py, steps.py, status.py),
called through Pyro4 over loopback TCP as the rockit clients call them, against libvirt's test driver
and simulated camds."""

import threading
import time

import libvirt
import Pyro4.errors
import pytest

from rockit.camvirt.shared.constants import OFFLINE_CAMERA_STATUS, CameraState, CommandStatus, VMState
from testworld.simcamd import ABSENT, DRIPPING, HUNG, UNINITIALISED
from testworld.support import deadline, wait_until


def libvirt_states(world):
    return [world.domain(name).isActive() for name in world.domain_names]


def first_camd(world):
    """The first domain's camd: the simulator lists it once start_camd() returned, which may be after
    it first answered camvirtd (on a busy machine, after camvirtd's initialize succeeded)."""
    camds = wait_until(lambda: world.simulator.camds(world.domain_names[0]))
    assert camds, 'the simulator never listed the camd'
    return camds[0]


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
    assert 'camera c2a (camd_c2a at 127.0.0.1:' in log and 'did not answer within 1 s (last try: cannot be ' \
        'reached: Connection refused)' in log
    assert world.call('report_status')['domains'][1]['cameras'][0]['reason'].endswith(
        'cannot be reached: Connection refused')
    assert 'c1a' not in log.split('initialize failed')[0].split('requested')[-1]
    report = world.call('report_status')
    last = report['last_command']
    assert last['status'] == CommandStatus.Failed and [p for p in last['problems'] if 'c2a' in p]
    # Both VMs run at its end, so both are expected to run: crash watch notices if either stops.
    assert report['should_run'] == world.domain_names
    # Kept with who asked (the registry's name for the address), when, for how long; status points at it.
    assert last['caller'] == 'LocalHost at 127.0.0.1' and last['duration'] >= 1 and last['started'] <= last['time']
    assert world.call('report_history') == [last] and report['last_failed'] == last


def test_initialize_fails_naming_a_hung_camd(make_world):
    world = make_world(domains=2, behaviours={'c1a': HUNG}, initialize_timeout=1)
    assert world.call('initialize') == CommandStatus.Failed
    assert 'camera c1a' in world.log.text() and '(last try: did not answer within' in world.log.text()
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
    running = world.call('report_status')['running_command']
    assert (running['name'], running['caller']) == ('initialize', 'LocalHost at 127.0.0.1')
    assert running['started'] < running['until']  # until when at the latest: started + initialize_timeout
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


def test_a_hung_camd_whose_vm_runs_is_an_error_naming_it_and_holds_up_no_other_camera(make_world):
    world = make_world(domains=2, behaviours={'c1a': HUNG}, camera_timeout=1.0, initialize_timeout=1)
    world.call('initialize')
    hung_replies = []
    hung = threading.Thread(target=lambda: hung_replies.append(call_for_error(world, 'c1a')))
    hung.start()
    assert wait_until(lambda: first_camd(world).connections() > 0)
    # The other camera answers while the hung query is still waiting for its camd.
    assert world.call('report_camera_status', 'c2a')['state'] == CameraState.Idle
    assert hung.is_alive()
    hung.join()
    # vm_active says only whether the VM runs: never False while it does. The error is a builtin,
    # which any rockit client rebuilds, and reaches a client with Pyro's default 5 s timeout in time.
    error = hung_replies[0]
    assert isinstance(error, TimeoutError)
    assert 'camera c1a' in str(error) and 'did not answer within 1 s' in str(error)
    assert isinstance(call_for_error(world, 'c1a', timeout=5), TimeoutError)
    # Every query waited on the one call in flight: the hung camd has one connection from camvirtd.
    assert first_camd(world).connections() == 1


def call_for_error(world, camera_id, timeout=30):
    try:
        return world.call('report_camera_status', camera_id, timeout=timeout)
    except Exception as e:
        return e


def state_or_error(world, camera_id):
    reply = call_for_error(world, camera_id)
    return reply if isinstance(reply, Exception) else reply['state']


def test_a_camd_initialising_its_camera_keeps_vm_active_and_is_given_one_worker(make_world):
    """As at dusk: camvirtd starts the VMs, then opsd initialises the camera (the camd's camera lock
    held meanwhile) while the dashboard and camvirt status go on asking."""
    world = make_world(domains=1, behaviours={'c1a': UNINITIALISED}, camera_timeout=0.3, initialize_timeout=5)
    world.simulator.initialize_seconds = 2.0
    assert world.call('initialize') == CommandStatus.Succeeded
    camd = first_camd(world)
    camd.initialize_in_background()
    assert wait_until(lambda: camd.camera.state == CameraState.Initializing)
    replies = []
    while len(replies) < 200 and camd.camera.state != CameraState.Idle:
        replies.append(call_for_error(world, 'c1a'))
        status = world.call('report_status')
        assert status['domains'][0]['cameras'][0]['camd'] in ('answers', 'not answering')
    assert replies and all(isinstance(r, TimeoutError) or r['vm_active'] is True for r in replies)
    assert any(isinstance(r, TimeoutError) for r in replies)
    # (A query may still find the call camd has not answered for camera_timeout: a TimeoutError at once.)
    assert wait_until(lambda: state_or_error(world, 'c1a') == CameraState.Idle)
    assert camd.most_connections() <= 2 and camd.refused() == 0


def test_a_camd_that_refuses_connections_while_its_vm_runs_is_a_connection_error(make_world):
    world = make_world(domains=1, behaviours={'c1a': ABSENT}, initialize_timeout=1)
    assert world.call('initialize') == CommandStatus.Failed
    error = call_for_error(world, 'c1a')
    assert isinstance(error, ConnectionError) and 'camera c1a' in str(error) and 'cannot be reached' in str(error)


def test_a_camd_not_initialised_answers_state_0_with_vm_active(make_world):
    world = make_world(domains=1, behaviours={'c1a': UNINITIALISED})
    assert world.call('initialize') == CommandStatus.Succeeded
    assert world.call('report_camera_status', 'c1a') == {'state': CameraState.Disabled, 'vm_active': True}
    camera = world.call('report_status')['domains'][0]['cameras'][0]
    assert camera['camd'] == 'answers' and camera['camd_problem'] is None


def test_a_dripping_camd_holds_neither_queries_nor_commands(make_world):
    """A camd that answers the handshake one byte every half second: each query waits camera_timeout,
    a command ends within its own timeout and another can run after it."""
    world = make_world(domains=2, behaviours={'c1a': DRIPPING}, camera_timeout=1.0, initialize_timeout=3)
    started = time.monotonic()
    assert world.call('initialize', timeout=20) == CommandStatus.Failed
    assert time.monotonic() - started < 3 + 3  # its timeout, not the drip's 10 kB at 2 bytes a second
    started = time.monotonic()
    assert isinstance(call_for_error(world, 'c1a', timeout=20), Exception)
    assert time.monotonic() - started < 1 + 2
    started = time.monotonic()
    status = world.call('report_status', timeout=20)
    assert time.monotonic() - started < 1 + 2
    assert status['domains'][0]['cameras'][0]['camd'] == 'not answering'
    assert world.call('shutdown', timeout=20) == CommandStatus.Succeeded


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
    # libvirt's stop detail says how: `virsh destroy` is not a crash nor a shutdown from inside.
    assert (stop['reason'], stop['detail']) == ('stopped unexpectedly', 'destroyed (powered off through libvirt)')
    assert world.call('report_status')['domains'][1]['stop_detail'] == 'destroyed (powered off through libvirt)'
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


def test_under_load_through_camvirtd_a_busy_camd_never_has_more_than_2_connections_from_it(make_world):
    """10 dashboard clients (a new proxy per query, 5 s timeout), camvirt status and an initialize,
    all while camd initialises its camera: camd gives camvirtd one worker (two at most), and answers
    its own clients as soon as it is free. (All from one address: closed connections linger a moment
    in the server, so 10 callers churning proxies hold up to about 20 of the 32 one source may have.)"""
    world = make_world(domains=1, behaviours={'c1a': UNINITIALISED}, camera_timeout=0.5, initialize_timeout=5)
    world.simulator.initialize_seconds = 3.0
    assert world.call('initialize') == CommandStatus.Succeeded
    camd = first_camd(world)
    camd.initialize_in_background()
    assert wait_until(lambda: camd.camera.state == CameraState.Initializing)
    stop = threading.Event()
    errors = []

    def dashboard(method, *args):
        for _ in range(1000):
            if stop.is_set():
                return
            try:
                world.call(method, *args, timeout=5)
            except TimeoutError:
                pass  # camd busy: the dashboard shows Lost contact
            except Exception as e:
                errors.append(e)
    clients = [threading.Thread(target=dashboard, args=('report_camera_status', 'c1a'), daemon=True)
               for _ in range(10)]
    clients += [threading.Thread(target=dashboard, args=('report_status',), daemon=True),
                threading.Thread(target=dashboard, args=('initialize',), daemon=True)]
    for client in clients:
        client.start()
    try:
        assert wait_until(lambda: camd.camera.state == CameraState.Idle, 10)
        from_camvirtd = camd.most_connections()
        with Pyro4.Proxy(camd.address.uri) as own:  # opsd, say
            own._pyroTimeout = 5
            started = time.monotonic()
            assert own.report_status()['state'] == CameraState.Idle
            assert time.monotonic() - started < 3  # a free worker at once, not after camvirtd's queue
    finally:
        stop.set()
        for client in clients:
            client.join(30)
    assert not errors, errors[:3]
    assert from_camvirtd <= 2
    assert camd.most_connections() <= 2 + 1  # camvirtd's, and the test's own client
    assert camd.refused() == 0


def test_an_initialize_cut_short_by_camvirtd_stopping_says_so_not_that_its_vm_stopped(make_world):
    world = make_world(domains=1, behaviours={'c1a': ABSENT}, initialize_timeout=30)
    name = world.domain_names[0]
    results = []

    def initialize():
        try:
            results.append(world.call('initialize'))
        except Pyro4.errors.CommunicationError as e:  # the server went with camvirtd
            results.append(e)

    command = threading.Thread(target=initialize)
    command.start()
    assert wait_until(lambda: world.domain(name).isActive() and world.call('report_status')['command'])
    world.camvirtd.stop()  # the service's stop, while the initialize still waits for camd
    command.join(10)
    assert results and not command.is_alive()
    failed = [line for line in world.log.text().splitlines() if line.startswith('error: initialize: ')]
    assert failed == ['error: initialize: camera c1a: camvirtd stopped while waiting for camd']
    assert world.domain(name).isActive()  # camvirtd's stop leaves the VMs as they are
