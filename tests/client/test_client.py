"""camvirt as operators run it: a separate process talking Pyro4 to a camvirtd on loopback."""

import datetime
import json
import os
import re
import signal
import socket
import subprocess

import pytest

from rockit.camvirt.client.configfind import ClientError, find_config_path
from rockit.camvirt.client.statusview import device_lines
from testworld.simcamd import ABSENT, UNINITIALISED
from testworld.support import REPO, free_port, wait_until

CAMVIRT = os.path.join(REPO, 'camvirt')


def camvirt(env, *args, timeout=60):
    return subprocess.run([CAMVIRT] + list(args), env=env, capture_output=True, text=True, timeout=timeout)


def test_init_status_kill(make_world, tmp_path):
    world = make_world(domains=2)
    env = world.client_env(tmp_path)
    result = camvirt(env, 'init')
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and re.fullmatch(
        r'initialize {}, {}: camvirtd gives it at most \d+ s \(until \d\d:\d\d:\d\d \w+\)'.format(
            *world.domain_names), lines[0]), lines  # its deadline first
    assert re.fullmatch(r'command completed successfully in \d+\.\d s', lines[-1])  # its total last
    status = json.loads(camvirt(env, 'status', '--json').stdout)
    assert [d['state'] for d in status['domains']] == ['running', 'running']
    assert [d['cameras'][0]['label'] for d in status['domains']] == ['IDLE', 'IDLE']
    table = camvirt(env, 'status').stdout
    assert '\033[' not in table  # no colour when stdout is not a terminal
    lines = table.splitlines()
    assert lines[0].split() == ['DOMAIN', 'VM', 'STATE', 'SINCE', '(UTC)', 'CAMERA', 'CAMERA', 'STATE']
    assert lines[1].split()[0] == world.domain_names[0] and 'IDLE' in lines[1]
    assert 'last command: initialize command completed successfully' in table
    result = camvirt(env, 'kill')
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == '  off now: {}, {}'.format(*world.domain_names)  # what went off
    assert 'OFFLINE' in camvirt(env, 'status').stdout


def test_failed_init_exits_non_zero(make_world, tmp_path):
    world = make_world(domains=1, behaviours={'c1a': ABSENT}, initialize_timeout=1)
    result = camvirt(world.client_env(tmp_path), 'init')
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    failed = next(i for i, line in enumerate(lines) if line.startswith('command failed in '))
    summary = lines[failed + 1:]
    assert len(summary) == 1 and summary[0].startswith('  camera c1a (camd_c1a at 127.0.0.1:')


def test_init_shows_progress_while_it_waits(make_world, tmp_path):
    world = make_world(domains=1, boot_delay=1.5)
    result = camvirt(world.client_env(tmp_path), 'init')
    assert result.returncode == 0
    progress = [line for line in result.stdout.splitlines()[1:] if world.domain_names[0] in line]
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
    outcomes = [line.rsplit(' in ', 1)[0] for line in result.stdout.splitlines() if 'command ' in line]
    assert outcomes == ['kill: command completed successfully', 'init: command completed successfully']
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
                       'camera': 'c1a', 'camera_state': 'IDLE', 'devices': '', 'counted': True}
    assert rows[1]['host'] == 'down' and rows[1]['problem'].startswith('not camvirtd: something else answers at ')
    assert rows[2]['host'] == 'broken' and rows[2]['problem'].startswith('bad config: ')
    table = camvirt(env, 'status', '--all').stdout.splitlines()
    assert table[0].split() == ['HOST', 'DOMAIN', 'VM', 'STATE', 'CAMERA', 'CAMERA', 'STATE']
    # A config that cannot be shown: a short word in its row, why on the line under it.
    assert table[2].split() == ['down', 'not', 'camvirtd'] and table[3].startswith('  something else answers at ')
    assert table[4].split() == ['broken', 'bad', 'config'] and table[5].startswith('  ')
    assert len(table) == 6


def test_refused_ip_exits_10(make_world, tmp_path):
    world = make_world(domains=1, control_machines=['Elsewhere'])
    result = camvirt(world.client_env(tmp_path), 'init')
    assert (result.returncode, result.stdout.splitlines()[-1]) == (10, 'command not accepted from this IP')
    assert not world.domain(world.domain_names[0]).isActive()


def test_unknown_domain_is_named_with_the_known_ones_before_anything_is_sent(make_world, tmp_path):
    world = make_world(domains=1)
    env = world.client_env(tmp_path)
    result = camvirt(env, 'init', 'nosuch', world.domain_names[0])
    assert (result.returncode, result.stdout) == (3, '')
    assert result.stderr == "camvirt: unknown domain 'nosuch' (not in {}; its domains: {})\n".format(
        env['CAMVIRTD_CONFIG_PATH'], world.domain_names[0])
    assert world.call('report_status')['last_command'] is None  # camvirtd was not asked


def test_history_shows_who_when_how_long_and_status_points_at_the_last_failure(make_world, tmp_path):
    world = make_world(domains=1, behaviours={'c1a': ABSENT}, initialize_timeout=1)
    env = world.client_env(tmp_path)
    assert camvirt(env, 'init').returncode == 1
    assert camvirt(env, 'kill').returncode == 0
    result = camvirt(env, 'history')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == 'commands, oldest first (times UTC)'
    assert lines[1].endswith('ago)  initialize {}'.format(world.domain_names[0]))
    assert re.fullmatch(r'    by LocalHost at 127\.0\.0\.1, took 1\.\d s: failed', lines[2]), lines
    assert lines[3].startswith('    camera c1a (camd_c1a at 127.0.0.1:')
    assert lines[5].startswith('    by LocalHost at 127.0.0.1, took ') and lines[5].endswith(
        ': command completed successfully')
    history = json.loads(camvirt(env, 'history', '--json').stdout)
    assert [(h['name'], h['status'], h['caller']) for h in history] == [
        ('initialize', 1, 'LocalHost at 127.0.0.1'), ('shutdown', 0, 'LocalHost at 127.0.0.1')]
    status = camvirt(env, 'status').stdout
    assert 'last failed: initialize at ' in status and 'by LocalHost at 127.0.0.1 (camvirt history shows why)' in status


def test_global_flags_before_or_after_the_command_and_no_broken_pipe(make_world, tmp_path):
    world = make_world(domains=1)
    env = world.client_env(tmp_path)
    assert camvirt(env, '--no-color', 'status').returncode == 0
    assert camvirt(env, 'status', '--no-color').returncode == 0
    piped = subprocess.run('{} config | head -1'.format(CAMVIRT), shell=True, env=env, capture_output=True,
                           text=True, timeout=60)
    assert piped.stderr == '' and len(piped.stdout.splitlines()) == 1


def test_help_labels_exit_codes_and_names_environment_and_files():
    text = subprocess.run([CAMVIRT, 'init', '--help'], capture_output=True, text=True, timeout=60).stdout
    assert '    2    another command is running' in text and '    101  camvirtd cannot be reached' in text
    assert '\nENVIRONMENT\n  CAMVIRTD_CONFIG_PATH' in text and '/etc/camvirtd/registry.d/*.json' in text
    for command in ([], ['init'], ['status'], ['history'], ['config']):
        text = subprocess.run([CAMVIRT] + command + ['--help'], env=dict(os.environ, COLUMNS='80'),
                              capture_output=True, text=True, timeout=60).stdout
        assert all(len(line) <= 80 for line in text.splitlines()), text


def unreachable_env(tmp_path, port):
    """A client environment whose camvirtd (config c.json, so unit camvirtd@c) is at 127.0.0.1:port."""
    registry = tmp_path / 'registry.json'
    registry.write_text(json.dumps({'daemons': {'here': {'object_id': 'x', 'host': 'LocalHost', 'port': port}}}))
    config = tmp_path / 'c.json'
    config.write_text(json.dumps({'daemon': 'here', 'log_name': 'x', 'control_machines': ['LocalHost'],
                                  'initialize_timeout': 1, 'shutdown_timeout': 1,
                                  'domains': {'d': {'c': 'here'}}}))
    return dict(os.environ, CAMVIRTD_REGISTRY=str(registry), CAMVIRTD_CONFIG_PATH=str(config))


def test_unreachable_daemon(tmp_path):
    port = free_port()
    env = unreachable_env(tmp_path, port)
    for command in ('init', 'kill', 'status'):
        result = camvirt(env, command)
        assert result.returncode == 101 and 'command' not in result.stdout
        lines = result.stderr.splitlines()
        assert lines[0] == 'camvirt: cannot reach camvirtd at 127.0.0.1:{0} (PYRO:x@127.0.0.1:{0}): ' \
            'connection refused: nothing listens on that port'.format(port)
        assert lines[1] == '  check: is camvirtd@c running on 127.0.0.1? (systemctl status camvirtd@c; ' \
            'journalctl -u camvirtd@c)'
    result = camvirt(env, 'restart')
    assert result.returncode == 101 and result.stderr.startswith('camvirt: kill: cannot reach camvirtd at ')
    assert result.stdout.splitlines()[-1] == 'restart: init not run because kill did not succeed'


def test_daemon_that_accepts_but_never_answers(tmp_path):
    with socket.socket() as listener:  # the kernel completes the handshake; nobody reads
        listener.bind(('127.0.0.1', 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        env = unreachable_env(tmp_path, port)
        result = camvirt(env, 'status')
    assert result.returncode == 101
    assert 'camvirtd accepted the connection but did not answer within 10 s' in result.stderr
    assert 'journalctl -u camvirtd@c' in result.stderr


def test_config_prints_port_and_json(tmp_path):
    env = dict(os.environ, CAMVIRTD_REGISTRY='', CAMVIRTD_CONFIG_PATH=os.path.join(REPO, 'config/superwasp_das1.json'))
    result = camvirt(env, 'config')
    text = result.stdout
    assert 'PYRO:superwasp_camvirt_daemon_das1@10.2.6.173:9012' in text
    assert '9012/tcp' in text
    lines = text.splitlines()
    # Which file and why, and every setting that changes what camvirtd does, where the log goes.
    assert lines[0] == 'config:           {} (from CAMVIRTD_CONFIG_PATH)'.format(env['CAMVIRTD_CONFIG_PATH'])
    assert 'force shutdown:   no (camvirt kill --force does it once)' in lines
    assert 'restart crashed:  no: a VM that stops is reported only' in lines
    assert 'timeouts:         initialize 90 s, shutdown 30 s (asked again every 5 s), camera 1.0 s' in lines
    assert 'log:              table camvirtd@superwasp_das1 on PYRO:observatory_log_daemon@10.2.6.100:9016 ' \
        '(machine GOTOServer) (observatory_log from shipped)' in lines
    assert 'state file:       /var/lib/camvirtd/superwasp_das1.json (as the service keeps it)' in lines
    # The shipped initialize 90 s against the ops script's 70 s: a note, not a warning.
    assert "note:             opsd's ops scripts wait initialize 70 s, shutdown 40 s; initialize 90 s may take " \
        'longer' in text
    assert 'warning' not in result.stderr
    summary = json.loads(camvirt(env, 'config', '--json').stdout)
    assert (summary['restart_crashed'], summary['force_shutdown'], summary['camera_timeout']) == (False, False, 1.0)
    assert summary['log_daemon']['machine'] == 'GOTOServer' and summary['state_file'].endswith('superwasp_das1.json')
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
    assert "{}: log_name: required key is missing".format(config) in result.stderr


def test_config_and_registry_problems_come_together(tmp_path):
    config = tmp_path / 'c.json'
    config.write_text('{"daemon": "superwasp_camvirt_das1"}')
    registry = tmp_path / 'site.json'
    registry.write_text('{"machines": {"X": "not an address"}}')
    env = dict(os.environ, CAMVIRTD_REGISTRY=str(registry), CAMVIRTD_CONFIG_PATH=str(config))
    for command in ([CAMVIRT, 'config'], [os.path.join(REPO, 'camvirtd'), str(config)]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode in (1, 78) and 'Traceback' not in result.stderr
        assert str(registry) + ': machines.X' in result.stderr, result.stderr
        assert '{}: log_name: required key is missing'.format(config) in result.stderr


def test_usage_errors_exit_non_zero():
    result = camvirt(dict(os.environ), 'frobnicate')
    assert result.returncode == 2 and 'invalid choice' in result.stderr


def test_config_discovery(tmp_path):
    configs, units = tmp_path / 'camvirtd', tmp_path / 'system'
    configs.mkdir()
    units.mkdir()

    def found():
        return find_config_path({}, str(configs), str(units))

    assert find_config_path({'CAMVIRTD_CONFIG_PATH': '/x.json'}, str(configs)) == '/x.json'
    with pytest.raises(ClientError, match='no config found'):
        found()
    (configs / 'sting_das1.json').write_text('{}')
    assert found() == str(configs / 'sting_das1.json')
    (configs / 'superwasp_das1.json').write_text('{}')
    with pytest.raises(ClientError, match=r'several configs in .* \(sting_das1.json, superwasp_das1.json\) '
                                          r'and none of them enabled'):
        found()
    # `systemctl enable camvirtd@sting_das1` on this host: that is the one camvirt talks to.
    (units / 'multi-user.target.wants').mkdir()
    link = units / 'multi-user.target.wants' / 'camvirtd@sting_das1.service'
    link.symlink_to('/usr/lib/systemd/system/camvirtd@.service')
    assert found() == str(configs / 'sting_das1.json')


def test_status_exit_codes_follow_what_needs_attention(make_world, tmp_path):
    world = make_world(domains=1, behaviours={'c1a': ABSENT})
    env = world.client_env(tmp_path)
    result = camvirt(env, 'status')
    assert result.returncode == 0, result.stdout  # off, and nobody asked for it to run
    world.domain(world.domain_names[0]).create()  # running, but its camera does not answer
    result = camvirt(env, 'status')
    assert result.returncode == 1
    last = result.stdout.splitlines()[-1]
    assert last.startswith('needs attention: camera c1a: camd camd_c1a at 127.0.0.1:') and \
        last.endswith('cannot be reached: Connection refused while its VM {} runs'.format(world.domain_names[0]))
    assert camvirt(env, 'status', '--json').returncode == 1
    assert camvirt(env, 'status', '--all').returncode == 1


def test_status_of_a_camera_not_initialised_yet_exits_0(make_world, tmp_path):
    world = make_world(domains=1, behaviours={'c1a': UNINITIALISED})
    assert world.call('initialize') == 0
    result = camvirt(world.client_env(tmp_path), 'status')
    assert result.returncode == 0, result.stdout
    assert 'needs attention' not in result.stdout


def test_status_shows_local_times_and_json_keeps_utc(make_world, tmp_path):
    world = make_world(domains=1)
    env = world.client_env(tmp_path)
    assert camvirt(env, 'init').returncode == 0
    env['TZ'] = 'UTC-3'  # POSIX: three hours east of UTC
    since = json.loads(camvirt(env, 'status', '--json').stdout)['domains'][0]['since']
    assert since.endswith('+00:00')
    local = datetime.datetime.fromisoformat(since).astimezone(datetime.timezone(datetime.timedelta(hours=3)))
    row = camvirt(env, 'status').stdout.splitlines()[1]
    assert re.search(r'\b{} \(\d+ s ago\)'.format(local.strftime('%H:%M:%S')), row), row


def test_version_of_both_executables():
    from rockit.camvirt import __version__
    for program in ('camvirt', 'camvirtd'):
        result = subprocess.run([os.path.join(REPO, program), '--version'], capture_output=True, text=True,
                                timeout=30)
        assert (result.returncode, result.stdout) == (0, '{} {}\n'.format(program, __version__))


def test_help_lists_exit_codes():
    for command, expected in (('status', '1 something needs attention'), ('init', '2 another command is running'),
                              ('kill', '101 camvirtd cannot be reached'), ('config', '0 shown')):
        text = camvirt(dict(os.environ), command, '--help').stdout
        assert 'EXIT STATUS' in text and ' '.join(expected.split(' ', 1)) in ' '.join(text.split()), command
    assert '--watch' in camvirt(dict(os.environ), 'status', '--help').stdout


def test_watch_with_all_is_a_usage_error():
    result = camvirt(dict(os.environ), 'status', '--all', '--watch')
    assert result.returncode == 2 and 'cannot be used with --all' in result.stderr


def test_status_from_something_that_is_not_camvirtd(make_world, tmp_path):
    world = make_world(domains=1)
    assert world.call('initialize') == 0
    env = world.client_env(tmp_path)
    config = json.loads(open(env['CAMVIRTD_CONFIG_PATH']).read())
    config['daemon'] = 'camd_c1a'  # a camd answers report_status() too
    with open(env['CAMVIRTD_CONFIG_PATH'], 'w') as f:
        json.dump(config, f)
    result = camvirt(env, 'status')
    assert result.returncode == 101 and 'Traceback' not in result.stderr
    assert 'something answers there but it is not a camvirtd' in result.stderr.splitlines()[0]


def test_restart_names_the_phase_that_failed(make_world, tmp_path):
    world = make_world(domains=1, behaviours={'c1a': ABSENT}, initialize_timeout=1, shutdown_timeout=1)
    env = world.client_env(tmp_path)
    result = camvirt(env, 'restart')
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith('kill: command completed successfully in ')]
    failed = next(i for i, line in enumerate(lines) if line.startswith('init: command failed in '))
    assert lines[failed + 1].startswith('  camera c1a (camd_c1a at 127.0.0.1:')
    world.domain(world.domain_names[0]).suspend()  # a paused VM does not shut down
    result = camvirt(env, 'restart')
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert [lines[-3].rsplit(' in ', 1)[0]] + lines[-2:] == ['kill: command failed', '  domain {} is still paused '
                                                             'after 1 s'.format(world.domain_names[0]),
                                                             'restart: init not run because kill did not succeed']


def test_ctrl_c_while_init_waits_ends_without_a_traceback(make_world, tmp_path):
    world = make_world(domains=1, behaviours={'c1a': ABSENT}, initialize_timeout=20)
    process = subprocess.Popen([CAMVIRT, 'init'], env=world.client_env(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    with process:
        # Interrupt once the command is under way: camvirtd reports it in progress.
        assert wait_until(lambda: world.call('report_status')['command'] == 'initialize', 20)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 130
    assert 'Traceback' not in err and 'carries on in camvirtd' in err


# --- passthrough devices ---------------------------------------------------------------

def test_init_waits_for_an_absent_device_and_names_it_in_the_failure_summary(make_world, tmp_path):
    from devworld import USB_BY_IDS, USB_BY_IDS_ABSENT, device_driver
    world = make_world(domains=2, initialize_timeout=2,
                       driver_xml=device_driver(tmp_path, [[USB_BY_IDS_ABSENT], [USB_BY_IDS]]))
    env = world.client_env(tmp_path)
    absent, present = world.domain_names
    result = camvirt(env, 'init')
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.endswith('{}: VM shut off; waiting for USB device 03c3:2601; camera c1a OFFLINE'.format(
        absent)) for line in lines), lines
    failed = next(i for i, line in enumerate(lines) if line.startswith('command failed in '))
    summary = lines[failed + 1:]
    assert summary == ['  camera c1a (domain {}): USB device 03c3:2601 is not on this host: is the camera '
                       'powered and plugged in?'.format(absent)]
    table = camvirt(env, 'status').stdout.splitlines()
    assert 'domain {}: USB device 03c3:2601 ABSENT'.format(absent) in table
    assert 'domain {}: USB device 03c3:2600 (ZWO ASI2600MM Pro) present'.format(present) in table
    rows = json.loads(camvirt(env, 'status', '--all', '--json').stdout)
    assert [row['devices'] for row in rows] == ['absent: USB 03c3:2601', '1 present']
    assert camvirt(env, 'status', '--all').stdout.splitlines()[0].split()[-1] == 'DEVICES'


def test_status_marks_absent_required_devices_red():
    status = {'libvirt_connected': True, 'libvirt_uri': 'x', 'command': None, 'last_command': None,
              'domains': [{'name': 'cam1', 'state': 'shut off', 'since': '2026-11-27T11:12:44+00:00',
                           'cameras': [{'id': 'cam1', 'label': 'OFFLINE'}],
                           'devices': [{'kind': 'usb', 'id': '03c3:2600', 'name': None, 'present': False,
                                        'optional': False, 'understood': True, 'waiting': False},
                                       {'kind': 'usb', 'id': '03c3:1600', 'name': 'guider', 'present': False,
                                        'optional': True, 'understood': True, 'waiting': False}]}]}
    lines = device_lines(status)
    assert lines[0] == '[red]domain cam1: USB device 03c3:2600 ABSENT[/red]'
    assert lines[1] == 'domain cam1: USB device 03c3:1600 (guider) ABSENT (optional)'
