"""End to end: a bad registry file (through CAMVIRTD_REGISTRY) stops ./camvirtd and `camvirt config` at
once, with one line per problem naming the file and the key, and no traceback."""

import json
import os
import subprocess
import time

import pytest

from .e2e_world import CAMVIRT, CAMVIRTD, REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

CONFIG = os.path.join(REPO, 'config', 'test.json')
LOCAL = os.path.join(REPO, 'testworld', 'registry-local.json')
# Generous for a loaded machine; on an idle one each case takes about 0.3 s (the interpreter's start).
BOUND = 10


def with_daemon(**changes):
    entry = {'object_id': 'localhost_camvirt_daemon', 'host': 'LocalHost', 'port': 9020}
    entry.update(changes)
    return json.dumps({'daemons': {'localhost_camvirt': entry}})


BAD_REGISTRIES = {
    # case: (file content, or a path to use as it is; the (key) text each line must hold)
    'fifo': ('FIFO', ['a FIFO, not a regular file']),
    '/dev/zero': ('/dev/zero', ['a character device, not a regular file']),
    'nested 100000 deep': ('[' * 100000 + ']' * 100000, ['nested deeper than']),
    '20 MB array': ('[' + '1,' * 10 * 1024 * 1024 + '1]', ['larger than 1024 KiB']),
    'machines a list': ('{"machines": []}', ['machines: must be an object']),
    'daemons a string': ('{"daemons": "x"}', ['daemons: must be an object']),
    'port 1e400': (with_daemon(port=1e400).replace('Infinity', '1e400'), ['daemons.localhost_camvirt.port: inf ']),
    'port 70000': (with_daemon(port=70000), ['daemons.localhost_camvirt.port: 70000 ']),
    'port -1': (with_daemon(port=-1), ['daemons.localhost_camvirt.port: -1 ']),
    'port 0': (with_daemon(port=0), ['daemons.localhost_camvirt.port: 0 ']),
    'port 9020.5': (with_daemon(port=9020.5), ['daemons.localhost_camvirt.port: 9020.5 ']),
    'object id with a space': (with_daemon(object_id='camvirt daemon'), ['daemons.localhost_camvirt.object_id: ']),
    'address 999.1.1.1': ('{"machines": {"LocalHost": "999.1.1.1"}}', ['machines.LocalHost: ']),
    'unknown host': (with_daemon(host='NoSuchHost'), ['daemons.localhost_camvirt.host: unknown machine name']),
    'two problems': (with_daemon(port=0, object_id='a b'), ['daemons.localhost_camvirt.object_id: ',
                                                            'daemons.localhost_camvirt.port: 0 ']),
}


def bad_file(folder, content):
    if content == '/dev/zero':
        return content
    path = os.path.join(folder, 'registry.json')
    if content == 'FIFO':
        os.mkfifo(path)
    else:
        with open(path, 'w') as f:
            f.write(content)
    return path


@pytest.mark.parametrize('case', sorted(BAD_REGISTRIES))
def test_a_bad_registry_stops_camvirtd_and_camvirt_at_once(tmp_path, case):
    content, expected = BAD_REGISTRIES[case]
    path = bad_file(str(tmp_path), content)
    # The bad file after the test world's own: an operator file overlays the others.
    env = dict(os.environ, CAMVIRTD_REGISTRY='{}:{}'.format(LOCAL, path), CAMVIRTD_CONFIG_PATH=CONFIG)
    started = time.monotonic()
    processes = {name: subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                 for name, command in (('camvirtd', [CAMVIRTD, CONFIG]), ('camvirt', [CAMVIRT, 'config']))}
    try:
        for name, process in processes.items():
            out, err = process.communicate(timeout=BOUND)
            elapsed = time.monotonic() - started
            print('{}: {}: exit {} after {:.2f} s'.format(case, name, process.returncode, elapsed))
            assert process.returncode == (78 if name == 'camvirtd' else 1), name + out + err
            assert 'Traceback' not in out + err and len(err) < 2000
            lines = err.strip().splitlines()
            assert len(lines) == len(expected), err
            for line, text in zip(lines, expected):
                assert path in line and text in line, line
    finally:
        for process in processes.values():
            process.kill()
            process.wait()
