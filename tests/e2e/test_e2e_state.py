"""End to end: camvirtd killed outright and started again remembers which domains should run, the
last command and a command it was cut off in; a VM destroyed while it was down is reported at start;
a corrupt state file costs one warning."""

import json
import os
import signal
import threading

import pytest

from .e2e_world import domain_states, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def kill_camvirtd(world):
    """SIGKILL: no chance to write anything on the way out."""
    world.camvirtd.signal(signal.SIGKILL)
    assert world.camvirtd.wait(10) == -signal.SIGKILL


def unexpected_stop(world, name):
    return next(d['unexpected_stop'] for d in world.status()['domains'] if d['name'] == name)


def test_after_a_kill_and_restart_a_destroyed_vm_is_an_unexpected_stop(make_process_world):
    world = make_process_world().start()
    assert world.camvirt('init').returncode == 0
    kill_camvirtd(world)
    world.start_camvirtd()
    assert world.camvirtd.out.wait_for(r'INFO: state restored from .*: should run: cam1, cam2', 5)

    world.virsh('destroy', 'cam1')
    line = world.camvirtd.out.wait_for(r'ERROR: domain cam1 stopped unexpectedly', 10)
    assert line, world.camvirtd.describe()
    stop = unexpected_stop(world, 'cam1')
    assert stop and stop['state'] == 'shut off'
    assert stop['reason'] == 'stopped unexpectedly' and stop['detail'] == 'destroyed (powered off through libvirt)'
    last = world.status()['last_command']  # the command before the kill
    assert (last['name'], last['status'], last['domains']) == ('initialize', 0, ['cam1', 'cam2'])
    assert 'domain cam1 stopped unexpectedly' in world.camvirt('status').stdout


def test_after_a_kill_and_restart_restart_crashed_starts_it_again(make_process_world):
    world = make_process_world(extra_config={'restart_crashed': True}).start()
    assert world.camvirt('init').returncode == 0
    kill_camvirtd(world)
    world.start_camvirtd()

    world.virsh('destroy', 'cam2')
    assert world.camvirtd.out.wait_for(r'ERROR: domain cam2 stopped unexpectedly', 10)
    assert world.camvirtd.out.wait_for(r'INFO: initialize \(cam2\) succeeded', 20), world.camvirtd.describe()
    assert 'initialize (cam2) requested by camvirtd' in world.camvirtd.out.text()
    assert world.domstate('cam2') == 'running'
    with open(world.state_path) as f:
        assert len(json.load(f)['restarts']) == 1  # the budget used is written down too


@pytest.mark.parametrize('restart_crashed', [False, True])
def test_a_vm_destroyed_while_camvirtd_is_down_is_reported_at_start(make_process_world, restart_crashed):
    world = make_process_world(extra_config={'restart_crashed': restart_crashed}).start()
    assert world.camvirt('init').returncode == 0
    kill_camvirtd(world)
    world.virsh('destroy', 'cam1')
    world.start_camvirtd()

    line = world.camvirtd.out.wait_for(r'ERROR: domain cam1 stopped while camvirtd was not running', 10)
    assert line and line.endswith('it is shut off while it should run'), world.camvirtd.describe()
    if restart_crashed:
        assert world.camvirtd.out.wait_for(r'INFO: initialize \(cam1\) succeeded', 20), world.camvirtd.describe()
        assert world.domstate('cam1') == 'running'
        assert unexpected_stop(world, 'cam1') is None  # cleared by the successful restart
    else:
        stop = unexpected_stop(world, 'cam1')
        assert stop['state'] == 'shut off'
        assert stop['reason'] == 'stopped while camvirtd was not running'
        assert stop['detail'] == 'destroyed (powered off through libvirt)'
        assert domain_states(world.status()) == {'cam1': 'shut off', 'cam2': 'running'}
        kill_camvirtd(world)  # the stop itself is remembered too
        world.start_camvirtd()
        assert unexpected_stop(world, 'cam1') == stop
    assert 'cam2 stopped' not in world.camvirtd.out.text()


def test_every_vm_off_after_a_host_reboot_is_restarted_in_one_command(make_process_world):
    """What a host reboot looks like to camvirtd: every VM that should run is off at its start."""
    world = make_process_world(extra_config={'restart_crashed': True}).start()
    assert world.camvirt('init').returncode == 0
    kill_camvirtd(world)
    world.virsh('destroy', 'cam1')
    world.virsh('destroy', 'cam2')
    world.start_camvirtd()
    assert wait_until(lambda: domain_states(world.report_status()) == {'cam1': 'running', 'cam2': 'running'}, 20), \
        world.camvirtd.describe()
    log = world.camvirtd.out.text()
    assert 'another command is running' not in log
    assert log.count('stopped while camvirtd was not running') == 2
    assert log.count('initialize (cam1, cam2) requested by camvirtd') == 1


def test_a_command_cut_off_by_camvirtds_death_is_recorded_as_interrupted(make_process_world):
    world = make_process_world(initialize_timeout=20).start(boot_delay=5)  # camds answer 5 s after their VM starts
    init = threading.Thread(target=world.camvirt, args=('init',), daemon=True)
    init.start()
    assert world.camvirtd.out.wait_for(r'initialize \(cam1, cam2\) requested by', 10)
    kill_camvirtd(world)
    init.join(30)
    world.start_camvirtd()
    assert world.camvirtd.out.wait_for(r'ERROR: initialize \(cam1, cam2\) was interrupted', 5), \
        world.camvirtd.describe()
    last = world.status()['last_command']
    assert last['interrupted'] is True and last['status'] == 1
    assert last['message'].startswith('interrupted: camvirtd stopped while it ran')
    assert 'interrupted: camvirtd stopped while it ran' in world.camvirt('status').stdout


def test_a_corrupt_state_file_is_one_warning_and_a_clean_start(make_process_world):
    world = make_process_world()
    os.makedirs(world.state_dir)
    with open(world.state_path, 'w') as f:
        f.write('{"format": 1, "daemon": "e2e_camvirt", "expected": {"cam1": ')  # cut off midway
    world.start()
    warning = world.camvirtd.out.wait_for(r'WARNING: ', 5)
    assert warning and world.state_path in warning and 'not valid JSON' in warning, world.camvirtd.describe()
    assert warning.endswith('starting with nothing remembered')
    assert world.camvirtd.out.text().count('WARNING') == 1
    assert world.camvirt('init').returncode == 0
    with open(world.state_path) as f:
        assert sorted(json.load(f)['expected']) == ['cam1', 'cam2']
    assert os.path.exists(world.state_path + '.bad')


def test_no_state_file_is_an_info_line(make_process_world):
    world = make_process_world().start()
    assert world.camvirtd.out.wait_for(r'INFO: no state file at {}: first start'.format(world.state_path), 5)
    assert 'WARNING' not in world.camvirtd.out.text() and 'ERROR' not in world.camvirtd.out.text()
