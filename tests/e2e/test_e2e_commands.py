"""End to end: camvirt init / kill / status, the dashboard's and opsd's Pyro4 calls, refusals."""

import os
import signal
import subprocess
import threading
import time

import Pyro4
import pytest

from .e2e_world import CAMVIRT, OFFLINE, camera_labels, domain_states, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def test_init_starts_every_vm_and_waits_for_every_camera_then_kill_stops_them(make_process_world):
    world = make_process_world().start()
    assert [world.domstate(name) for name in world.domains] == ['shut off', 'shut off']

    started = time.monotonic()
    init = world.camvirt('init')
    init_seconds = time.monotonic() - started
    assert init.returncode == 0, init.stdout + init.stderr
    assert 'command completed successfully' in init.stdout
    # Not before the simulated guests booted (0.3 s) and their camds answered.
    assert init_seconds > 0.3
    assert [world.domstate(name) for name in world.domains] == ['running', 'running']
    status = world.status()
    assert status['libvirt_connected'] is True
    assert domain_states(status) == {'cam1': 'running', 'cam2': 'running'}
    assert camera_labels(status) == {'cam1': 'IDLE', 'cam2': 'IDLE'}
    for camera_id in world.cameras:
        with world.proxy() as proxy:
            reply = proxy.report_camera_status(camera_id)
        assert reply['vm_active'] is True and reply['camera_id'] == camera_id

    kill = world.camvirt('kill')
    assert kill.returncode == 0, kill.stdout + kill.stderr
    assert [world.domstate(name) for name in world.domains] == ['shut off', 'shut off']
    status = world.status()
    assert domain_states(status) == {'cam1': 'shut off', 'cam2': 'shut off'}
    assert camera_labels(status) == {'cam1': 'OFFLINE', 'cam2': 'OFFLINE'}
    print('init took {:.2f} s (boot delay 0.3 s)'.format(init_seconds))


def test_init_and_kill_from_a_machine_that_is_not_a_control_machine_are_refused(make_process_world):
    # Elsewhere (10.255.255.1) is the only control machine: camvirt calls from 127.0.0.1. Nothing
    # is ever sent to Elsewhere.
    world = make_process_world(control_machines=['Elsewhere']).start()

    init = world.camvirt('init')
    assert init.returncode == 10, init.stdout + init.stderr
    assert 'command not accepted from this IP' in init.stdout
    assert [world.domstate(name) for name in world.domains] == ['shut off', 'shut off']

    world.virsh('start', 'cam1')
    kill = world.camvirt('kill')
    assert kill.returncode == 10, kill.stdout + kill.stderr
    assert world.domstate('cam1') == 'running'
    assert 'refused initialize from 127.0.0.1: not a control machine' in world.camvirtd.out.text()


def test_dashboard_and_operations_daemon_calls_with_plain_pyro4(make_process_world):
    world = make_process_world().start()
    uri = 'PYRO:{}@127.0.0.1:{}'.format(world.daemons['e2e_camvirt']['object_id'],
                                        world.daemons['e2e_camvirt']['port'])

    def dashboard_query(camera_id):
        proxy = Pyro4.Proxy(uri)
        proxy._pyroTimeout = 5
        with proxy:
            return proxy.report_camera_status(camera_id)

    def opsd_call(method):
        proxy = Pyro4.Proxy(uri)
        proxy._pyroTimeout = 300
        with proxy:
            return getattr(proxy, method)()

    assert dashboard_query('cam1') == OFFLINE

    assert opsd_call('initialize') == 0
    reply = dashboard_query('cam1')
    assert reply['vm_active'] is True
    assert reply['state'] == 2  # IDLE
    assert reply['camera_id'] == 'cam1'
    assert {'cooler_mode', 'temperature', 'exposure_time'} <= set(reply)
    assert world.domstate('cam1') == 'running'

    assert opsd_call('shutdown') == 0
    assert dashboard_query('cam1') == OFFLINE
    assert [world.domstate(name) for name in world.domains] == ['shut off', 'shut off']


def command_running(world, name):
    return wait_until(lambda: (world.report_status() or {}).get('command') == name, 10)


def test_a_command_while_init_runs_is_blocked(make_process_world):
    # cam2's camd never comes up: init waits its whole initialize_timeout for it.
    world = make_process_world(initialize_timeout=6).start('--absent', 'cam2')
    long_init = subprocess.Popen([CAMVIRT, 'init'], env=world.env, stdout=subprocess.PIPE, text=True)
    try:
        assert command_running(world, 'initialize')
        second_init = world.camvirt('init')
        kill = world.camvirt('kill')
        assert world.report_status()['command'] == 'initialize', 'the first init ended too soon for this test'
    finally:
        out, _ = long_init.communicate(timeout=30)
    assert second_init.returncode == 2, second_init.stdout + second_init.stderr
    assert 'another command is already running' in second_init.stdout
    assert kill.returncode == 2, kill.stdout + kill.stderr
    assert long_init.returncode == 1, out
    # The refused kill changed nothing: the first init started both VMs, and they still run.
    assert [world.domstate(name) for name in world.domains] == ['running', 'running']


def test_init_while_kill_runs_is_blocked(make_process_world):
    # The test driver shuts a domain down at once, so the kill is made long by freezing libvirtd
    # (SIGSTOP): camvirtd's shutdown request then waits on libvirt, as it would on a busy host.
    world = make_process_world(shutdown_timeout=15).start()
    assert world.camvirt('init').returncode == 0
    libvirtd = world.libvirtd_pid()
    os.kill(libvirtd, signal.SIGSTOP)
    try:
        long_kill = subprocess.Popen([CAMVIRT, 'kill'], env=world.env, stdout=subprocess.PIPE, text=True)
        assert command_running(world, 'shutdown')
        init = world.camvirt('init')
    finally:
        os.kill(libvirtd, signal.SIGCONT)
    out, _ = long_kill.communicate(timeout=30)
    assert init.returncode == 2, init.stdout + init.stderr
    assert 'refused initialize from 127.0.0.1: shutdown is running' in world.camvirtd.out.text()
    # Once libvirtd works again the kill completes.
    assert long_kill.returncode == 0, out
    assert [world.domstate(name) for name in world.domains] == ['shut off', 'shut off']


def test_two_operations_daemons_at_once_one_wins_the_other_is_blocked(make_process_world):
    world = make_process_world(initialize_timeout=6).start('--absent', 'cam2')
    results = []

    def opsd_initialize():
        with world.proxy(timeout=300) as proxy:
            results.append(proxy.initialize())

    threads = [threading.Thread(target=opsd_initialize) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [1, 2]  # one ran (and failed on cam2), the other was turned away
