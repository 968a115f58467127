"""End to end: what camvirt shows while a command waits (progress, failure summary) and the fleet view
of several hosts. (Forced power-off of a guest that ignores the power button needs a real guest:
test_e2e_qemu.py.)"""

import json
import re

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def test_progress_lines_while_waiting_and_a_summary_naming_what_failed(make_process_world):
    # cam2's camd never comes up: init waits for it until initialize_timeout (3 s), printing progress.
    world = make_process_world(initialize_timeout=3).start('--absent', 'cam2', boot_delay=0.6)
    result = world.camvirt('init')

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    progress = [line for line in lines if re.match(r'^ *\d+\.\ds cam[12]: VM ', line)]
    assert any('cam1: VM running; camera cam1 IDLE' in line for line in progress), result.stdout
    assert any('cam2: VM running; camera cam2 OFFLINE' in line for line in progress), result.stdout
    assert '\x1b[' not in result.stdout  # no colours when stdout is not a terminal
    failed = [i for i, line in enumerate(lines) if line.startswith('command failed in ')]
    assert failed, result.stdout
    assert any(line.startswith('  ') and 'cam2' in line and 'cam1' not in line for line in
               lines[failed[0]:]), result.stdout


def test_fleet_status_shows_every_host_in_one_table(make_process_world):
    world = make_process_world().start()
    assert world.camvirt('init', 'cam1').returncode == 0
    # A second host whose camvirtd is not running: its config names another daemon address.
    registry = json.load(open(world.registry_path))
    registry['daemons']['e2e_camvirt_down'] = dict(registry['daemons']['e2e_camvirt'], port=1)
    world.write('registry.json', registry)
    down = world.write('das2.json', dict(world.config, daemon='e2e_camvirt_down'))
    env = dict(world.env, CAMVIRTD_CONFIG_PATH='{}:{}'.format(world.config_path, down))

    table = world.camvirt('status', '--all', env=env)
    assert table.returncode == 1, table.stdout + table.stderr  # das2 could not be shown: it needs attention
    rows = [line.split() for line in table.stdout.splitlines()]
    assert rows[0] == ['HOST', 'DOMAIN', 'VM', 'STATE', 'CAMERA', 'CAMERA', 'STATE']
    assert ['camvirtd', 'cam1', 'running', 'cam1', 'IDLE'] in rows
    assert ['camvirtd', 'cam2', 'shut', 'off', 'cam2', 'OFFLINE'] in rows
    # Its row says so in a word, and why on the line under it.
    assert ['das2', 'unreachable'] in rows
    assert rows[rows.index(['das2', 'unreachable']) + 1][:3] == ['127.0.0.1:1:', 'connection', 'refused:']

    as_json = json.loads(world.camvirt('status', '--all', '--json', env=env).stdout)
    assert {(r['host'], r['camera'], r['camera_state']) for r in as_json if r['camera']} == {
        ('camvirtd', 'cam1', 'IDLE'), ('camvirtd', 'cam2', 'OFFLINE')}
