"""camvirt as operators run it: a separate process talking Pyro4 to a camvirtd on loopback."""

import json
import os
import subprocess

import pytest

from conftest import REPO, free_port
from rockit.camvirt.client import find_config_path, ClientError, format_status_table
from testworld.simcamd import ABSENT

CAMVIRT = os.path.join(REPO, 'camvirt')


def camvirt(env, *args, timeout=60):
    return subprocess.run([CAMVIRT] + list(args), env=env, capture_output=True, text=True, timeout=timeout)


def test_init_status_kill(make_world, tmp_path):
    world = make_world(domains=2)
    env = world.client_env(tmp_path)
    result = camvirt(env, 'init')
    assert (result.returncode, result.stdout.strip()) == (0, 'command completed successfully')
    status = json.loads(camvirt(env, 'status', '--json').stdout)
    assert [d['state'] for d in status['domains']] == ['running', 'running']
    assert [d['cameras'][0]['label'] for d in status['domains']] == ['IDLE', 'IDLE']
    table = camvirt(env, 'status').stdout
    assert '\033[' not in table  # no colour when stdout is not a terminal
    lines = table.splitlines()
    assert lines[0].split() == ['DOMAIN', 'VM', 'STATE', 'SINCE', 'CAMERA', 'CAMERA', 'STATE']
    assert lines[1].split()[0] == world.domain_names[0] and 'IDLE' in lines[1]
    assert 'last command: initialize command completed successfully' in table
    result = camvirt(env, 'kill')
    assert (result.returncode, result.stdout.strip()) == (0, 'command completed successfully')
    assert 'OFFLINE' in camvirt(env, 'status').stdout


def test_failed_init_exits_non_zero(make_world, tmp_path):
    world = make_world(domains=1, behaviours={'c1a': ABSENT}, initialize_timeout=1)
    result = camvirt(world.client_env(tmp_path), 'init')
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    summary = lines[lines.index('command failed') + 1:]
    assert len(summary) == 1 and summary[0].startswith('  camera c1a (camd_c1a at 127.0.0.1:')


def test_init_shows_progress_while_it_waits(make_world, tmp_path):
    world = make_world(domains=1, boot_delay=1.5)
    result = camvirt(world.client_env(tmp_path), 'init')
    assert result.returncode == 0
    progress = [line for line in result.stdout.splitlines() if world.domain_names[0] in line]
    assert progress and progress[0].split(None, 1)[1] == '{}: VM running; camera c1a OFFLINE'.format(
        world.domain_names[0])
    assert progress[0].split()[0].endswith('s')


def test_kill_force_and_restart(make_world, tmp_path):
    world = make_world(domains=2, shutdown_timeout=1)
    env = world.client_env(tmp_path)
    first, second = world.domain_names
    assert camvirt(env, 'init').returncode == 0
    world.domain(first).suspend()
    result = camvirt(env, 'kill')
    assert result.returncode == 1
    assert '  domain {} is still paused after 1 s'.format(first) in result.stdout.splitlines()
    assert camvirt(env, 'kill', '--force', first).returncode == 0
    assert not world.domain(first).isActive()
    result = camvirt(env, 'restart', second)
    assert result.returncode == 0
    assert result.stdout.splitlines().count('command completed successfully') == 2
    assert world.domain(second).isActive() and not world.domain(first).isActive()


def test_fleet_status_queries_every_config(make_world, tmp_path):
    world = make_world(domains=1)
    env = world.client_env(tmp_path)
    assert camvirt(env, 'init').returncode == 0
    down = tmp_path / 'down.json'
    down.write_text(json.dumps(dict(world.data, daemon='camd_c1a')))  # a camd, not a camvirtd, answers
    broken = tmp_path / 'broken.json'
    broken.write_text('{')
    env['CAMVIRTD_CONFIG_PATH'] = ':'.join([env['CAMVIRTD_CONFIG_PATH'], str(down), str(broken)])
    rows = json.loads(camvirt(env, 'status', '--all', '--json').stdout)
    assert rows[0] == {'host': 'camvirtd', 'domain': world.domain_names[0], 'vm_state': 'running',
                       'camera': 'c1a', 'camera_state': 'IDLE'}
    assert rows[1]['host'] == 'down' and rows[1]['domain'].startswith('not a camvirtd at 127.0.0.1:')
    assert rows[2]['host'] == 'broken' and rows[2]['domain'].startswith('bad config: ')
    table = camvirt(env, 'status', '--all').stdout.splitlines()
    assert table[0].split() == ['HOST', 'DOMAIN', 'VM', 'STATE', 'CAMERA', 'CAMERA', 'STATE']
    assert len(table) == 4


def test_refused_ip_exits_10(make_world, tmp_path):
    world = make_world(domains=1, control_machines=['Elsewhere'])
    result = camvirt(world.client_env(tmp_path), 'init')
    assert (result.returncode, result.stdout.strip()) == (10, 'command not accepted from this IP')
    assert not world.domain(world.domain_names[0]).isActive()


def test_unknown_domain(make_world, tmp_path):
    world = make_world(domains=1)
    result = camvirt(world.client_env(tmp_path), 'init', 'nosuch')
    assert (result.returncode, result.stdout.strip()) == (
        3, 'invalid arguments (unknown domain name or malformed request)')


def test_unreachable_daemon(tmp_path):
    registry = tmp_path / 'registry.json'
    registry.write_text(json.dumps({'daemons': {'here': {'object_id': 'x', 'host': 'LocalHost',
                                                         'port': free_port()}}}))
    config = tmp_path / 'c.json'
    config.write_text(json.dumps({'daemon': 'here', 'log_name': 'x', 'control_machines': ['LocalHost'],
                                  'initialize_timeout': 1, 'shutdown_timeout': 1,
                                  'domains': {'d': {'c': 'here'}}}))
    env = dict(os.environ, CAMVIRTD_REGISTRY=str(registry), CAMVIRTD_CONFIG_PATH=str(config))
    for command in ('init', 'kill', 'status'):
        result = camvirt(env, command)
        assert (result.returncode, result.stdout.strip()) == (101, 'unable to communicate with camvirt daemon')


def test_config_prints_port_and_json(tmp_path):
    env = dict(os.environ, CAMVIRTD_REGISTRY='', CAMVIRTD_CONFIG_PATH=os.path.join(REPO, 'config/superwasp_das1.json'))
    text = camvirt(env, 'config').stdout
    assert 'PYRO:superwasp_camvirt_daemon_das1@10.2.6.173:9012' in text
    assert '9012/tcp' in text
    summary = json.loads(camvirt(env, 'config', '--json').stdout)
    assert summary['port'] == 9012
    assert summary['control_machines']['SWASPTCS'] == '10.2.6.160'
    assert summary['domains'] == {'cam1': {'cam1': 'PYRO:superwasp_camera_daemon_1@10.2.6.165:9040'},
                                  'cam2': {'cam2': 'PYRO:superwasp_camera_daemon_2@10.2.6.166:9041'}}


def test_bad_config_is_one_line_exit_1(tmp_path):
    config = tmp_path / 'c.json'
    config.write_text('{"daemon": "superwasp_camvirt_das1"}')
    env = dict(os.environ, CAMVIRTD_REGISTRY='', CAMVIRTD_CONFIG_PATH=str(config))
    result = camvirt(env, 'status')
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert "{}: (top level): 'log_name' is a required property".format(config) in result.stderr


def test_usage_errors_exit_non_zero():
    result = camvirt(dict(os.environ), 'frobnicate')
    assert result.returncode == 2 and 'invalid choice' in result.stderr


def test_config_discovery(tmp_path):
    assert find_config_path({'CAMVIRTD_CONFIG_PATH': '/x.json'}, str(tmp_path)) == '/x.json'
    with pytest.raises(ClientError, match='no config found'):
        find_config_path({}, str(tmp_path))
    (tmp_path / 'a.json').write_text('{}')
    assert find_config_path({}, str(tmp_path)) == str(tmp_path / 'a.json')
    (tmp_path / 'b.json').write_text('{}')
    with pytest.raises(ClientError, match=r'several configs in .* \(a.json, b.json\)'):
        find_config_path({}, str(tmp_path))


def test_status_table_shows_unexpected_stops():
    status = {'libvirt_connected': True, 'libvirt_uri': 'x', 'command': None, 'last_command': None,
              'domains': [{'name': 'cam1', 'state': 'crashed', 'since': 'T1',
                           'unexpected_stop': {'state': 'crashed', 'time': 'T1'},
                           'cameras': [{'id': 'cam1', 'label': 'OFFLINE'}]}]}
    assert format_status_table(status, color=False)[-1] == 'domain cam1 stopped unexpectedly at T1 (crashed)'


def test_status_table_colours_and_unreachable_libvirt():
    status = {'libvirt_connected': False, 'libvirt_uri': 'qemu:///system', 'command': None, 'last_command': None,
              'domains': [{'name': 'cam1', 'state': 'unknown', 'since': 'T',
                           'cameras': [{'id': 'cam1', 'label': 'OFFLINE'}]}]}
    plain = format_status_table(status, color=False)
    assert plain[0] == 'libvirt at qemu:///system is unreachable'
    coloured = format_status_table(status, color=True)
    assert '\033[91m' in coloured[0] and '\033[91mOFFLINE' in coloured[-1]
