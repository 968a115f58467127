"""End to end: a VM that stops while it should run is reported with when, and (opt-in) started again
within its hourly budget."""

import datetime

import pytest

from .e2e_world import OFFLINE, domain_states, since, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def test_a_vm_that_stops_behind_camvirtds_back_is_reported_with_when(make_process_world):
    world = make_process_world().start()
    assert world.camvirt('init').returncode == 0
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)

    world.virsh('destroy', 'cam1')
    assert wait_until(lambda: world.camvirtd.out.wait_for('domain cam1 stopped unexpectedly', 0.1), 5)
    status = world.status()
    cam1 = next(d for d in status['domains'] if d['name'] == 'cam1')
    assert cam1['unexpected_stop']['state'] == 'shut off'
    assert datetime.datetime.fromisoformat(cam1['unexpected_stop']['time']) >= before
    assert since(status, 'cam1') >= before
    assert 'domain cam1 stopped unexpectedly at ' in world.camvirt('status').stdout
    assert next(d for d in status['domains'] if d['name'] == 'cam2')['unexpected_stop'] is None
    # The last command, with its result and time.
    assert status['last_command']['name'] == 'initialize' and status['last_command']['status'] == 0
    assert datetime.datetime.fromisoformat(status['last_command']['time']) <= datetime.datetime.now(
        datetime.timezone.utc)

    # A kill means the stop is expected: no report for what follows.
    assert world.camvirt('kill').returncode == 0
    world.virsh('start', 'cam2')
    world.virsh('destroy', 'cam2')
    assert wait_until(lambda: domain_states(world.report_status())['cam2'] == 'shut off', 5)
    assert 'domain cam2 stopped unexpectedly' not in world.camvirtd.out.text()


def test_restart_crashed_brings_a_vm_back_within_its_hourly_budget(make_process_world):
    world = make_process_world(extra_config={'restart_crashed': True, 'restart_crashed_per_hour': 1}).start()
    assert world.camvirt('init').returncode == 0

    world.virsh('destroy', 'cam1')
    assert world.camvirtd.out.wait_for('restarting domain cam1 after its unexpected stop', 5)
    assert world.camvirtd.out.wait_for(r'initialize \(cam1\) succeeded', 10)
    assert world.domstate('cam1') == 'running'
    with world.proxy() as dashboard:
        assert dashboard.report_camera_status('cam1')['vm_active'] is True

    world.virsh('destroy', 'cam1')  # a second time within the hour: over budget
    assert world.camvirtd.out.wait_for('not restarting domain cam1: 1 automatic restarts in the last hour', 5)
    assert world.domstate('cam1') == 'shut off'
    with world.proxy() as dashboard:
        assert dashboard.report_camera_status('cam1') == OFFLINE
