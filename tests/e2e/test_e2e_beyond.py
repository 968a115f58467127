"""End to end, beyond the daemon camvirtd replaces: one VM at a time, progress and failure summaries,
crash awareness and opt-in restarts, since-when, the fleet view. (Forced power-off of a guest that
ignores the power button needs a real guest: test_e2e_qemu.py.)"""

import datetime
import json
import re
import time

import Pyro4
import pytest

from .e2e_world import OFFLINE, camera_labels, domain_states, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def since(status, name):
    entry = next(d for d in status['domains'] if d['name'] == name)
    return datetime.datetime.fromisoformat(entry['since'])


def diagnose(world, camera_id):
    """What camd and camvirtd say of a camera now, for a failure message."""
    found = []
    for what, call in (('camd directly', lambda: _direct(world, camera_id)),
                       ('camvirtd report_camera_status', lambda: _through(world, camera_id)),
                       ('camvirt status again', lambda: camera_labels(world.status()))):
        started = time.monotonic()
        try:
            found.append('{}: {!r}'.format(what, call()))
        except Exception as e:  # noqa: BLE001 - any failure is what we want to see
            found.append('{}: {!r}'.format(what, e))
        found[-1] += ' ({:.2f} s)'.format(time.monotonic() - started)
    return '; '.join(found)


def _direct(world, camera_id):
    with Pyro4.Proxy(world.pyro_uri('e2e_camd_' + camera_id)) as camd:
        camd._pyroTimeout = 5
        return camd.report_status()


def _through(world, camera_id):
    with world.proxy() as proxy:
        return proxy.report_camera_status(camera_id)


def test_one_vm_at_a_time_leaves_the_others_alone(make_world):
    world = make_world().start()

    init = world.camvirt('init', 'cam1')
    assert init.returncode == 0, init.stdout + init.stderr
    assert (world.domstate('cam1'), world.domstate('cam2')) == ('running', 'shut off')

    assert world.camvirt('init', 'cam2').returncode == 0
    kill = world.camvirt('kill', 'cam1')
    assert kill.returncode == 0, kill.stdout + kill.stderr
    assert (world.domstate('cam1'), world.domstate('cam2')) == ('shut off', 'running')

    before = since(world.status(), 'cam2')
    restart = world.camvirt('restart', 'cam2')
    assert restart.returncode == 0, restart.stdout + restart.stderr
    status = world.status()
    assert domain_states(status) == {'cam1': 'shut off', 'cam2': 'running'}
    assert camera_labels(status) == {'cam1': 'OFFLINE', 'cam2': 'IDLE'}, diagnose(world, 'cam2')
    assert since(status, 'cam2') > before  # it really went down and up again
    assert world.sandbox.out.wait_for(r'^cam2: powered off', 5)


def test_an_unknown_domain_gets_its_own_code_and_changes_nothing(make_world):
    world = make_world().start()
    result = world.camvirt('init', 'cam1', 'cam9')
    assert result.returncode == 3, result.stdout + result.stderr
    assert 'unknown domain' in result.stdout
    assert (world.domstate('cam1'), world.domstate('cam2')) == ('shut off', 'shut off')
    assert "refused initialize from 127.0.0.1: unknown domain: 'cam9'" in world.camvirtd.out.text()

    # The same on the wire, and the rockit clients' no-argument calls are as before.
    with world.proxy(timeout=30) as opsd:
        assert opsd.shutdown(['cam9']) == 3
        assert opsd.initialize(['cam2']) == 0
        assert (world.domstate('cam1'), world.domstate('cam2')) == ('shut off', 'running')
        assert opsd.initialize() == 0
        assert opsd.shutdown() == 0
    assert (world.domstate('cam1'), world.domstate('cam2')) == ('shut off', 'shut off')


def test_progress_lines_while_waiting_and_a_summary_naming_what_failed(make_world):
    # cam2's camd never comes up: init waits for it until initialize_timeout (3 s), printing progress.
    world = make_world(initialize_timeout=3).start('--absent', 'cam2', boot_delay=0.6)
    result = world.camvirt('init')

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    progress = [line for line in lines if re.match(r'^ *\d+\.\ds cam[12]: VM ', line)]
    assert any('cam1: VM running; camera cam1 IDLE' in line for line in progress), result.stdout
    assert any('cam2: VM running; camera cam2 OFFLINE' in line for line in progress), result.stdout
    assert '\x1b[' not in result.stdout  # no colours when stdout is not a terminal
    assert 'command failed' in lines
    assert any(line.startswith('  ') and 'cam2' in line and 'cam1' not in line for line in
               lines[lines.index('command failed'):]), result.stdout


def test_a_vm_that_stops_behind_camvirtds_back_is_reported_with_when(make_world):
    world = make_world().start()
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


def test_restart_crashed_brings_a_vm_back_within_its_hourly_budget(make_world):
    world = make_world(extra_config={'restart_crashed': True, 'restart_crashed_per_hour': 1}).start()
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


def test_fleet_status_shows_every_host_in_one_table(make_world):
    world = make_world().start()
    assert world.camvirt('init', 'cam1').returncode == 0
    # A second host whose camvirtd is not running: its config names another daemon address.
    registry = json.load(open(world.registry_path))
    registry['daemons']['e2e_camvirt_down'] = dict(registry['daemons']['e2e_camvirt'], port=1)
    world.write('registry.json', registry)
    down = world.write('das2.json', dict(world.config, daemon='e2e_camvirt_down'))
    env = dict(world.env, CAMVIRTD_CONFIG_PATH='{}:{}'.format(world.config_path, down))

    table = world.camvirt('status', '--all', env=env)
    assert table.returncode == 0, table.stdout + table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    assert rows[0] == ['HOST', 'DOMAIN', 'VM', 'STATE', 'CAMERA', 'CAMERA', 'STATE']
    assert ['camvirtd', 'cam1', 'running', 'cam1', 'IDLE'] in rows
    assert ['camvirtd', 'cam2', 'shut', 'off', 'cam2', 'OFFLINE'] in rows
    assert ['das2', 'unreachable', '(127.0.0.1:1)'] in rows

    as_json = json.loads(world.camvirt('status', '--all', '--json', env=env).stdout)
    assert {(r['host'], r['camera'], r['camera_state']) for r in as_json if r['camera']} == {
        ('camvirtd', 'cam1', 'IDLE'), ('camvirtd', 'cam2', 'OFFLINE')}


def test_the_old_wire_calls_are_unchanged(make_world):
    world = make_world().start()
    with Pyro4.Proxy(world.pyro_uri('e2e_camvirt')) as opsd:
        opsd._pyroTimeout = 30
        assert opsd.initialize() == 0
        assert opsd.report_camera_status('cam1')['vm_active'] is True
        assert opsd.shutdown() == 0
        assert opsd.report_camera_status('cam1') == OFFLINE
