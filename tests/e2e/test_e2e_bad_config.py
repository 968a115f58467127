"""End to end: a bad config stops camvirtd, camvirt and camvirt-sandbox with a one-line reason."""

import json
import os
import subprocess

import pytest

from .e2e_world import CAMVIRT, CAMVIRTD, SANDBOX

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def edited(change):
    def apply(config):
        config = json.loads(json.dumps(config))
        change(config)
        return json.dumps(config)
    return apply


def without(key):
    return edited(lambda config: config.pop(key))


def with_value(key, value):
    return edited(lambda config: config.__setitem__(key, value))


def duplicate_camera(config):
    config['domains']['cam2']['cam1'] = 'e2e_camd_cam2'


BAD_CONFIGS = {
    # name: (how to make it from a good config, what the one line must say)
    'not json': (lambda config: '{"daemon": ', 'not valid JSON'),
    'missing key': (without('initialize_timeout'), 'initialize_timeout: required key is missing'),
    'unknown key': (with_value('colour', 'blue'), 'colour: unknown key'),
    'timeout 0': (with_value('shutdown_timeout', 0), 'shutdown_timeout: must be at least 1, not 0'),
    'unknown daemon name': (with_value('daemon', 'no_such_daemon'), "daemon: unknown daemon name 'no_such_daemon'"),
    'unknown machine': (with_value('control_machines', ['NoSuchMachine']),
                        "control_machines.0: unknown machine name 'NoSuchMachine'"),
    'duplicate camera id': (edited(duplicate_camera),
                            "domains.cam2.cam1: camera id 'cam1' is already used by domain 'cam1'"),
    'no domains': (with_value('domains', {}), 'domains: must not be empty'),
}


def run(command, env):
    return subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)


def assert_one_line_reason(result, expected, code=1):
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert 'Traceback' not in result.stderr + result.stdout


@pytest.mark.parametrize('case', sorted(BAD_CONFIGS))
def test_a_bad_config_stops_every_executable_with_a_one_line_reason(make_process_world, case):
    world = make_process_world()
    make, expected = BAD_CONFIGS[case]
    path = world.write('bad.json', make(world.config))
    env = dict(world.env, CAMVIRTD_CONFIG_PATH=path)
    processes = {
        'camvirtd': subprocess.Popen([CAMVIRTD, path], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True),
        'camvirt': subprocess.Popen([CAMVIRT, 'status'], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True),
        'camvirt-sandbox': subprocess.Popen([SANDBOX, path], env=env, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    }
    for name, process in processes.items():
        out, err = process.communicate(timeout=30)
        result = subprocess.CompletedProcess(process.args, process.returncode, out, err)
        assert_one_line_reason(result, expected, 1 if name == 'camvirt' else 78)  # 78: the unit gives up
        assert path in err, name
    # The sandbox started nothing: no libvirtd sockets in the world's folder.
    assert not any(name.startswith('libvirt') for name in os.listdir(world.folder))


def test_camvirt_sandbox_refuses_options_that_do_not_fit_the_config(make_process_world):
    world = make_process_world()
    unknown_camera = run([SANDBOX, world.config_path, '--hung', 'cam9'], world.env)
    assert_one_line_reason(unknown_camera, 'no camera cam9 in the config (it has cam1, cam2)')

    qemu_config = world.write('qemu.json', with_value('libvirt_uri', 'qemu:///system')(world.config))
    not_a_sandbox = run([SANDBOX, qemu_config], world.env)
    assert_one_line_reason(not_a_sandbox, 'libvirt_uri qemu:///system is not a sandbox URI')

    under_run = run([SANDBOX, world.config_path, '--dir', '/run/camvirt-e2e'], world.env)
    assert_one_line_reason(under_run, 'cannot be under /run')

    missing = run([SANDBOX, world.folder + '/no-such-config.json'], world.env)
    assert_one_line_reason(missing, 'cannot read config: No such file or directory', 78)


def test_camvirt_sandbox_refuses_qemu_options_that_do_not_fit(make_process_world):
    world = make_process_world()
    test_driver_uri = run([SANDBOX, '--qemu', world.config_path], world.env)
    assert_one_line_reason(test_driver_uri, 'is not a QEMU sandbox URI (qemu+unix:///system?socket=DIR/libvirt-sock)')

    unknown_domain = run([SANDBOX, '--qemu', '--ignores-power-button', 'vm9', world.config_path, '--dir',
                          world.folder + '/q'], world.env)
    assert_one_line_reason(unknown_domain, 'no domain vm9 in the config (it has cam1, cam2)')

    spaced = run([SANDBOX, '--qemu', world.config_path, '--dir', world.folder + '/a b'], world.env)
    assert_one_line_reason(spaced, 'must have no whitespace in its path for --qemu')

    for options, reason in ((['--ignores-power-button', 'cam1'], '--ignores-power-button needs --qemu'),
                            (['--qemu', '--boot-delay', '1'], '--boot-delay is for simulated guests')):
        result = run([SANDBOX, world.config_path] + options, world.env)
        assert result.returncode == 2 and reason in result.stderr  # argparse's usage error
    assert not any(name.startswith(('libvirt', 'q', 'a b')) for name in os.listdir(world.folder))
