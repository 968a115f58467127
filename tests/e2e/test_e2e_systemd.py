"""camvirtd@.service under a real systemd: this machine's systemd 252 (Rocky 9's major version) booted
in a container, with the files `make install` installs laid over its /usr, Debian's own python3-libvirt,
python3-pyro4 and python3-jsonschema, and every hardening line of the unit on.

libvirt is the test world's: camvirt-sandbox runs a private libvirtd with the config's domains (and
their simulated camds) on the host, and its socket folder is bound into the container, where the
installed config's libvirt_uri points. The camds and the camvirtd port are on 127.0.0.1, which the
container shares with the host.
"""

import json
import os
import re
import signal
import subprocess
import time
import uuid

import Pyro4
import pytest

from .e2e_world import REPO, wait_until
from .nspawn import Container, nspawn_problem

pytestmark = [pytest.mark.e2e, pytest.mark.systemd, pytest.mark.timeout(300)]

UNIT = 'camvirtd@test.service'
# Inside the container: where the sandbox's socket folder is bound (not /tmp: the unit has PrivateTmp).
LIBVIRT_FOLDER = '/srv/camvirt-libvirt'
# Debian's own Python, with Debian's packages of camvirtd's dependencies.
DEBIAN_SITELIB = '/usr/lib/python3/dist-packages'
RESTART_SEC = 5
# "RestartSec plus a little", on a shared, busy machine.
RESTART_SLACK = 10
STOP_LIMIT = 5
MAX_EXPOSURE = 2.0
NO_LIBVIRT_DAEMON = 'e2e_camvirt_nolibvirt'


def install_tree(folder):
    """`make install` into folder/dest: the files the packages carry (Debian's site-packages)."""
    dest = os.path.join(str(folder), 'dest')
    subprocess.run(['make', '-s', 'install', 'DESTDIR=' + dest, 'SITELIB=' + DEBIAN_SITELIB], cwd=REPO,
                   check=True, capture_output=True, timeout=60)
    return dest


def write_etc(dest, world):
    """/etc/camvirtd/test.json (the world's config, its libvirt socket where the container sees it),
    /etc/camvirtd/nolibvirt.json (the same domains, a libvirt that is not there) and
    /etc/camvirtd/registry.d/test.json (the world's ephemeral ports)."""
    etc = os.path.join(dest, 'etc', 'camvirtd')
    os.makedirs(os.path.join(etc, 'registry.d'), exist_ok=True)
    config = dict(world.config, libvirt_uri=world.uri.replace(world.folder, LIBVIRT_FOLDER))
    with open(os.path.join(etc, 'test.json'), 'w') as f:
        json.dump(config, f)
    world.daemons[NO_LIBVIRT_DAEMON] = world._address('camvirt_nolibvirt_' + uuid.uuid4().hex[:8])
    no_libvirt = dict(config, daemon=NO_LIBVIRT_DAEMON,
                      libvirt_uri='test+unix:///default?socket=/srv/no-libvirt-here/libvirt-sock')
    with open(os.path.join(etc, 'nolibvirt.json'), 'w') as f:
        json.dump(no_libvirt, f)
    with open(os.path.join(etc, 'registry.d', 'test.json'), 'w') as f:
        json.dump({'daemons': world.daemons, 'machines': {'LocalHost': '127.0.0.1'}}, f)
    return etc


def open_libvirt_socket(world):
    """The sandbox's libvirtd admits only root (0700); camvirtd runs as its own user. On a Rocky host
    a polkit rule (packaging/camvirtd.polkit.rules) lets it in; here the socket is opened to all."""
    os.chmod(world.folder, 0o755)
    os.chmod(os.path.join(world.folder, 'libvirt-sock'), 0o666)


@pytest.fixture
def system(make_world, tmp_path):
    """(container, world): the sandbox running, the container booted with camvirtd installed and
    camvirtd@test not started yet."""
    problem = nspawn_problem()
    if problem:
        pytest.fail('cannot boot a container: ' + problem)
    world = make_world()
    world.start_sandbox()
    open_libvirt_socket(world)
    dest = install_tree(tmp_path)
    etc = write_etc(dest, world)
    container = Container('camvirt-' + uuid.uuid4().hex[:8], usr_overlay=os.path.join(dest, 'usr'),
                          binds=[(etc, '/etc/camvirtd'), (world.folder, LIBVIRT_FOLDER)],
                          log_path=str(tmp_path / 'console.log'))
    try:
        container.boot()
        yield container, world
    finally:
        journal = container.run('journalctl', '--no-pager', '-u', UNIT, check=False).stdout \
            if container.init_pid else ''
        container.stop()
        print('--- journal of {}\n{}'.format(UNIT, journal))  # shown by pytest when the test failed
        print('--- console\n' + container.console())


def in_container(container, *args):
    """The installed camvirt, run inside the container as root would run it there."""
    return container.run('camvirt', *args, check=False,
                         env={'CAMVIRTD_CONFIG_PATH': '/etc/camvirtd/test.json'})


def main_pid(container):
    return int(container.show(UNIT, 'MainPID'))


def proc_status(container, pid):
    """/proc/PID/status of a process in the container, as {field: value}."""
    text = container.run('cat', '/proc/{}/status'.format(pid)).stdout
    return dict(line.split(':\t', 1) for line in text.splitlines() if ':\t' in line)


def test_unit_starts_serves_restarts_and_stops_under_systemd(system):
    container, world = system

    # Type=notify: `systemctl start` returns once camvirtd said READY=1, which it says once serving.
    container.systemctl('start', UNIT, timeout=60)
    assert container.show(UNIT, 'ActiveState') == 'active'
    status = world.report_status()
    assert status is not None, 'camvirtd did not answer right after systemctl start returned'
    assert wait_until(lambda: (world.report_status() or {}).get('libvirt_connected'), 15)

    # All the hardening on: its own user, no capabilities, no new privileges, a seccomp filter.
    pid = main_pid(container)
    fields = proc_status(container, pid)
    assert fields['Uid'].split()[0] != '0'
    assert container.run('id', '-u', 'camvirtd').stdout.split() == [fields['Uid'].split()[0]]
    assert (fields['CapEff'], fields['CapBnd'], fields['NoNewPrivs'], fields['Seccomp']) == \
        ('0000000000000000', '0000000000000000', '1', '2')
    assert container.run('stat', '-c', '%U %a', '/var/lib/camvirtd').stdout.split() == ['camvirtd', '750']
    analysis = container.run('systemd-analyze', 'security', '--no-pager', UNIT).stdout
    exposure = float(re.search(r'Overall exposure level for \S+: ([\d.]+)', analysis).group(1))
    assert exposure <= MAX_EXPOSURE, analysis

    # camvirt init / kill through it.
    init = in_container(container, 'init', 'cam1')
    assert init.returncode == 0, init.stdout + init.stderr
    assert world.domstate('cam1') == 'running'

    # SIGKILL: systemd starts it again after RestartSec, serving, the running VM untouched.
    container.systemctl('kill', '--signal', 'SIGKILL', UNIT)
    killed = time.monotonic()
    assert wait_until(lambda: main_pid(container) not in (0, pid) and world.report_status(),
                      RESTART_SEC + RESTART_SLACK, interval=0.1), 'camvirtd was not restarted'
    restarted_after = time.monotonic() - killed
    assert RESTART_SEC * 0.8 <= restarted_after <= RESTART_SEC + RESTART_SLACK, restarted_after
    assert container.show(UNIT, 'NRestarts') == '1'
    assert world.domstate('cam1') == 'running'
    assert wait_until(lambda: {d['name']: d['state'] for d in (world.report_status() or {}).get('domains', [])}
                      .get('cam1') == 'running', 15)

    kill = in_container(container, 'kill', 'cam1')
    assert kill.returncode == 0, kill.stdout + kill.stderr
    assert world.domstate('cam1') == 'shut off'
    assert world.domstate('cam2') == 'shut off'

    # systemctl stop: camvirtd goes within 5 s (SIGTERM, not the stop timeout's SIGKILL).
    started = time.monotonic()
    container.systemctl('stop', UNIT, timeout=30)
    stop_seconds = time.monotonic() - started
    assert stop_seconds < STOP_LIMIT, stop_seconds
    assert container.show(UNIT, 'ActiveState') == 'inactive'
    assert container.show(UNIT, 'Result') == 'success'
    assert world.report_status() is None

    # libvirt not up: the unit starts all the same, serves, and says libvirt is not connected.
    container.systemctl('start', 'camvirtd@nolibvirt.service', timeout=60)
    assert container.show('camvirtd@nolibvirt.service', 'ActiveState') == 'active'
    with Pyro4.Proxy(world.pyro_uri(NO_LIBVIRT_DAEMON)) as proxy:
        proxy._pyroTimeout = 5
        assert proxy.report_status()['libvirt_connected'] is False
    container.systemctl('stop', 'camvirtd@nolibvirt.service', timeout=30)

    # The journal holds camvirtd's own lines, from both runs.
    journal = container.run('journalctl', '--no-pager', '-o', 'cat', '-u', UNIT).stdout
    assert len(re.findall(r'camvirtd serving PYRO:', journal)) == 2, journal
    assert 'camvirtd stopping' in journal
    assert signal.SIGKILL.name in journal or 'status=9/KILL' in journal, journal
