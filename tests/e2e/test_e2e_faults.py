"""End to end: faults injected from outside camvirtd (libvirtd killed, a VM destroyed behind its back,
a camd that hangs or never comes up)."""

import os
import signal
import threading
import time

import pytest

from .e2e_world import OFFLINE, camera_labels, domain_states, process_alive, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def test_libvirtd_killed_and_restarted_under_a_running_camvirtd(make_process_world):
    world = make_process_world().start()
    assert world.camvirt('init').returncode == 0
    old_pid = world.libvirtd_pid()

    killed_at = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)
    assert world.sandbox.out.wait_for(r'^sandbox: libvirtd restarted', 15), world.sandbox.describe()
    new_pid = world.libvirtd_pid()
    world.libvirtd_pids.add(new_pid)
    assert new_pid != old_pid and not process_alive(old_pid)

    # The restarted libvirtd has the domains again, shut off (the test driver kept them in memory).
    def truthful_again():
        status = world.report_status()
        return status and status['libvirt_connected'] and \
            domain_states(status) == {'cam1': 'shut off', 'cam2': 'shut off'}

    assert wait_until(truthful_again, 10), world.camvirtd.describe()
    reconnect_seconds = time.monotonic() - killed_at
    status = world.status()
    assert status['libvirt_connected'] is True
    assert domain_states(status) == {'cam1': 'shut off', 'cam2': 'shut off'}
    assert camera_labels(status) == {'cam1': 'OFFLINE', 'cam2': 'OFFLINE'}
    assert [world.domstate(name) for name in world.domains] == ['shut off', 'shut off']
    log = world.camvirtd.out.text()
    assert 'lost connection to libvirt' in log and 'reconnected to libvirt' in log

    init = world.camvirt('init')
    assert init.returncode == 0, init.stdout + init.stderr
    assert camera_labels(world.status()) == {'cam1': 'IDLE', 'cam2': 'IDLE'}
    print('camvirtd truthful again {:.2f} s after libvirtd was killed'.format(reconnect_seconds))


def test_while_libvirtd_is_down_status_says_so_and_commands_fail_at_once(make_process_world):
    world = make_process_world(initialize_timeout=20, shutdown_timeout=20).start()
    # Freezing the sandbox keeps it from restarting libvirtd until we let it.
    world.sandbox.signal(signal.SIGSTOP)
    try:
        os.kill(world.libvirtd_pid(), signal.SIGKILL)
        assert wait_until(lambda: world.report_status()['libvirt_connected'] is False, 10)
        status = world.status()
        assert domain_states(status) == {'cam1': 'unknown', 'cam2': 'unknown'}
        assert camera_labels(status) == {'cam1': 'OFFLINE', 'cam2': 'OFFLINE'}
        table = world.camvirt('status').stdout
        assert 'libvirt at {} is unreachable'.format(world.uri) in table
        for command in ('init', 'kill'):
            started = time.monotonic()
            result = world.camvirt(command)
            assert result.returncode == 1, result.stdout + result.stderr
            assert 'libvirt at {} is unreachable'.format(world.uri) in result.stdout
            assert time.monotonic() - started < 5  # not its 20 s timeout
    finally:
        world.sandbox.signal(signal.SIGCONT)
    assert world.sandbox.out.wait_for(r'^sandbox: libvirtd restarted', 15)
    assert wait_until(lambda: world.report_status()['libvirt_connected'], 10)
    assert world.camvirt('init').returncode == 0


def test_a_vm_destroyed_behind_camvirtds_back_shows_off(make_process_world):
    world = make_process_world().start()
    assert world.camvirt('init').returncode == 0

    world.virsh('destroy', 'cam1')
    assert wait_until(lambda: domain_states(world.report_status())['cam1'] == 'shut off', 5)
    status = world.status()
    assert domain_states(status) == {'cam1': 'shut off', 'cam2': 'running'}
    assert camera_labels(status) == {'cam1': 'OFFLINE', 'cam2': 'IDLE'}
    with world.proxy() as proxy:
        assert proxy.report_camera_status('cam1') == OFFLINE
        assert proxy.report_camera_status('cam2')['vm_active'] is True
    assert 'domain cam1 stopped unexpectedly' in world.camvirtd.out.text()


def test_a_hung_camd_costs_status_its_bound_and_fails_init_naming_it(make_process_world):
    world = make_process_world(camera_timeout=0.5, initialize_timeout=3).start('--hung', 'cam2')

    init = world.camvirt('init')
    assert init.returncode == 1, init.stdout + init.stderr
    assert 'camera cam2' in init.stdout  # camvirt's failure summary
    assert world.camvirtd.out.wait_for(r'ERROR: initialize: camera cam2 .* did not answer within 3 s', 5)
    assert world.domstate('cam2') == 'running'

    # The hung camd is asked with a 0.5 s timeout: status answers within about that.
    started = time.monotonic()
    status = world.report_status()
    status_seconds = time.monotonic() - started
    assert status_seconds < 2.0
    assert camera_labels(status) == {'cam1': 'IDLE', 'cam2': 'OFFLINE'}
    cam2 = [c for d in status['domains'] for c in d['cameras'] if c['id'] == 'cam2'][0]
    # Its call from init is still in flight: the query does not wait on it again.
    assert cam2['camd'] == 'not answering' and 'has not answered for' in cam2['camd_problem']
    with world.proxy() as proxy:
        # Its VM runs: not the offline reply but an error naming the camera and the wait, in time for a
        # client with Pyro's default 5 s timeout (the dashboard shows Lost contact).
        proxy._pyroTimeout = 5
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r'camera cam2: camd .* has not answered for \d'):
            proxy.report_camera_status('cam2')
        assert time.monotonic() - started < 2.0
        assert proxy.report_camera_status('cam1')['state'] == 2
    assert camera_labels(world.status()) == {'cam1': 'IDLE', 'cam2': 'OFFLINE'}
    print('status with a hung camd took {:.2f} s (camera_timeout 0.5 s)'.format(status_seconds))


def test_a_camd_that_never_comes_up_fails_init_after_initialize_timeout(make_process_world):
    world = make_process_world(initialize_timeout=2).start('--absent', 'cam2')

    started = time.monotonic()
    init = world.camvirt('init')
    seconds = time.monotonic() - started
    assert init.returncode == 1, init.stdout + init.stderr
    assert 2.0 <= seconds < 10
    assert world.camvirtd.out.wait_for(r'ERROR: initialize: camera cam2 \(e2e_camd_cam2 at 127\.0\.0\.1:\d+\) '
                                       r'did not answer within 2 s', 5)
    assert camera_labels(world.status()) == {'cam1': 'IDLE', 'cam2': 'OFFLINE'}


def test_libvirtd_killed_while_init_waits_for_a_camd_fails_it_at_once_saying_so(make_process_world):
    world = make_process_world(initialize_timeout=30).start('--absent', 'cam2')
    results = []
    init = threading.Thread(target=lambda: results.append(world.camvirt('init')))
    init.start()
    assert world.camvirtd.out.wait_for(r'initialize \(cam1, cam2\) requested', 10), world.camvirtd.describe()
    assert wait_until(lambda: world.domstate('cam2') == 'running', 10)
    world.sandbox.signal(signal.SIGSTOP)  # no libvirtd restart until the command has ended
    try:
        os.kill(world.libvirtd_pid(), signal.SIGKILL)
        init.join(10)  # at once: not the 30 s initialize_timeout
    finally:
        world.sandbox.signal(signal.SIGCONT)
    assert results and results[0].returncode == 1, results
    log = world.camvirtd.out.text()
    assert 'camera cam2: libvirt at {} became unreachable while waiting for camd'.format(world.uri) in log, log
    assert 'stopped after its cameras answered' not in log
