"""camvirtd@.service under a real systemd: this machine's systemd 252 (Rocky 9's major version) booted
in a container, with the files `make install` installs laid over its /usr, Debian's own python3-libvirt,
python3-pyro4, python3-jsonschema and python3-rich, and every hardening line of the unit on.

libvirt is the container's own: Debian's libvirtd.service, socket-activated, with libvirt's default
access control (its socket open to all, each client asked about through polkit). camvirtd runs as the
camvirtd user, which only the polkit rule `make install` installed lets in, as on a Rocky host. The
domains live on that libvirtd's test driver; this test defines them and plays their guests (simulated
camds on 127.0.0.1, which the container shares with the host) through the container's libvirt socket.
"""

import json
import os
import re
import subprocess
import time
import uuid

import libvirt
import pytest

from rockit.camvirt.virt.eventloop import start_event_loop
from rockit.camvirt.shared.registry import DaemonAddress
from testworld.sandbox import SimulatedGuests
from testworld.simcamd import ANSWERS

from .e2e_world import REPO, wait_until
from .nspawn import Container, nspawn_problem

pytestmark = [pytest.mark.e2e, pytest.mark.systemd, pytest.mark.timeout(300)]

UNIT = 'camvirtd@test.service'
# Debian's own Python, with Debian's packages of camvirtd's dependencies.
DEBIAN_SITELIB = '/usr/lib/python3/dist-packages'
LIBVIRT_SOCKET = '/run/libvirt/libvirt-sock'
# The system libvirtd's test driver. Named with its socket: without it a non-root client of a test
# URI would start a session libvirtd of its own (qemu:///system needs no such help).
LIBVIRT_URI = 'test+unix:///default?socket=' + LIBVIRT_SOCKET
LIBVIRT_UNITS = ['libvirtd.socket', 'libvirtd-ro.socket', 'libvirtd-admin.socket']
# The container's libvirtd loads no hypervisor driver module (QEMU's wants users and devices a bare
# container lacks): the test driver, built into libvirt, is all this test uses. Its TLS and TCP sockets,
# enabled by Debian's presets on this first boot, would need certificates.
LIBVIRTD_DROP_IN = '/etc/systemd/system/libvirtd.service.d/camvirt-test.conf'
LIBVIRTD_SETTINGS = '[Service]\nEnvironment=LIBVIRT_DRIVER_DIR=/run/camvirt-test-no-drivers\n'
RESTART_SEC = 5
# "RestartSec plus a little", on a shared, busy machine.
RESTART_SLACK = 10
STOP_LIMIT = 5
MAX_EXPOSURE = 2.0
BOOT_DELAY = 0.3


def install_tree(folder):
    """`make install` into folder/dest: the files the packages carry (Debian's site-packages)."""
    dest = os.path.join(str(folder), 'dest')
    subprocess.run(['make', '-s', 'install', 'DESTDIR=' + dest, 'SITELIB=' + DEBIAN_SITELIB], cwd=REPO,
                   check=True, capture_output=True, timeout=60)
    return dest


def write_etc(dest, world):
    """/etc/camvirtd/test.json (the world's config, with the container's system libvirtd) and
    /etc/camvirtd/registry.d/test.json (the world's ephemeral ports)."""
    etc = os.path.join(dest, 'etc', 'camvirtd')
    os.makedirs(os.path.join(etc, 'registry.d'), exist_ok=True)
    with open(os.path.join(etc, 'test.json'), 'w') as f:
        json.dump(dict(world.config, libvirt_uri=LIBVIRT_URI), f)
    with open(os.path.join(etc, 'registry.d', 'test.json'), 'w') as f:
        json.dump({'daemons': world.daemons, 'machines': {'LocalHost': '127.0.0.1'}}, f)
    # A config enabled on the wrong host: its address is not this machine's.
    with open(os.path.join(etc, 'registry.d', 'wrong.json'), 'w') as f:
        json.dump({'machines': {'Elsewhere': '192.0.2.1'},  # TEST-NET-1: never this host
                   'daemons': {'wrong_camvirt': {'object_id': 'wrong', 'host': 'Elsewhere', 'port': 9999}}}, f)
    with open(os.path.join(etc, 'wrong.json'), 'w') as f:
        json.dump(dict(world.config, daemon='wrong_camvirt', libvirt_uri=LIBVIRT_URI), f)
    return etc


def start_libvirtd(container):
    container.write(LIBVIRTD_DROP_IN, LIBVIRTD_SETTINGS)
    container.run('mkdir', '-p', '/run/camvirt-test-no-drivers')
    container.systemctl('mask', '--runtime', '--now', 'libvirtd-tls.socket', 'libvirtd-tcp.socket')
    container.systemctl('daemon-reload')
    container.systemctl('reset-failed')
    container.systemctl('start', *LIBVIRT_UNITS)


def connect(container, seconds=30):
    """A connection to the container's libvirtd, from the host (as root, which polkit lets in)."""
    uri = 'test+unix:///default?socket=' + container.path(LIBVIRT_SOCKET)

    def attempt():
        try:
            return libvirt.open(uri)
        except libvirt.libvirtError:
            return None

    conn = wait_until(attempt, seconds, interval=0.2)
    assert conn is not None, 'the container\'s libvirtd did not answer: ' + \
        container.run('journalctl', '--no-pager', '-u', 'libvirtd.service', check=False).stdout[-2000:]
    return conn


def simulated_cameras(world):
    """{domain: [(camd address, camera id, behaviour)]} of the world's config."""
    cameras = {}
    for domain, ids in world.config['domains'].items():
        cameras[domain] = []
        for camera_id, daemon in ids.items():
            a = world.daemons[daemon]
            cameras[domain].append((DaemonAddress(daemon, a['object_id'], a['host'], a['port']), camera_id, ANSWERS))
    return cameras


@pytest.fixture
def system(make_process_world, tmp_path):
    """(container, world, conn): the container booted with camvirtd installed (not started yet), its
    libvirtd up with the world's domains, their guests played here; conn: this test's connection."""
    problem = nspawn_problem()
    if problem:
        pytest.fail('cannot boot a container: ' + problem)
    start_event_loop()  # before the connection opens: the simulated guests follow its events
    world = make_process_world()
    dest = install_tree(tmp_path)
    etc = write_etc(dest, world)
    container = Container('camvirt-' + uuid.uuid4().hex[:8], usr_overlay=os.path.join(dest, 'usr'),
                          binds=[(etc, '/etc/camvirtd')], log_path=str(tmp_path / 'console.log'))
    conn = guests = None
    guest_log = []
    try:
        container.boot()
        start_libvirtd(container)
        conn = connect(container)
        guests = SimulatedGuests(simulated_cameras(world), BOOT_DELAY, log=guest_log.append).bring_up(conn, None)
        yield container, world, conn
    finally:
        journal = container.run('journalctl', '--no-pager', '-u', UNIT, '-u', 'libvirtd.service',
                                check=False).stdout if container.init_pid else ''
        if guests is not None:
            guests.close()
        if conn is not None:
            try:
                conn.close()
            except libvirt.libvirtError:
                pass  # libvirtd went first
        container.stop()
        print('--- journal\n{}\n--- guests\n{}'.format(journal, '\n'.join(guest_log)))  # shown on failure
        print('--- console\n' + container.console())


def in_container(container, *args):
    """The installed camvirt, run inside the container as root would run it there."""
    return container.run('camvirt', *args, check=False,
                         env={'CAMVIRTD_CONFIG_PATH': '/etc/camvirtd/test.json'})


def as_user(container, user, *command):
    group = container.run('id', '-gn', user).stdout.strip()
    return container.run('setpriv', '--reuid', user, '--regid', group, '--clear-groups',
                         'env', 'HOME=/nonexistent', *command, check=False)


def main_pid(container):
    return int(container.show(UNIT, 'MainPID'))


def proc_status(container, pid):
    """/proc/PID/status of a process in the container, as {field: value}."""
    text = container.run('cat', '/proc/{}/status'.format(pid)).stdout
    return dict(line.split(':\t', 1) for line in text.splitlines() if ':\t' in line)


def domain_state(world, name):
    status = world.report_status() or {}
    return {d['name']: d['state'] for d in status.get('domains', [])}.get(name)


def libvirt_connected(world):
    return (world.report_status() or {}).get('libvirt_connected')


def test_unit_starts_serves_restarts_and_stops_under_systemd(system):
    container, world, conn = system

    # Type=notify: `systemctl start` returns once camvirtd said READY=1, which it says once serving.
    container.systemctl('start', UNIT, timeout=60)
    assert container.show(UNIT, 'ActiveState') == 'active'
    assert world.report_status() is not None, 'camvirtd did not answer right after systemctl start returned'
    assert wait_until(lambda: domain_state(world, 'cam1') == 'shut off', 15), world.report_status()

    # All the hardening on: its own user, no capabilities, no new privileges, a seccomp filter.
    pid = main_pid(container)
    fields = proc_status(container, pid)
    uid = fields['Uid'].split()[0]
    assert uid != '0' and container.run('id', '-u', 'camvirtd').stdout.split() == [uid]
    assert (fields['CapEff'], fields['CapBnd'], fields['NoNewPrivs'], fields['Seccomp']) == \
        ('0000000000000000', '0000000000000000', '1', '2')
    assert container.run('stat', '-c', '%U %a', '/var/lib/camvirtd').stdout.split() == ['camvirtd', '750']
    analysis = container.run('systemd-analyze', 'security', '--no-pager', UNIT).stdout
    exposure = float(re.search(r'Overall exposure level for \S+: ([\d.]+)', analysis).group(1))
    assert exposure <= MAX_EXPOSURE, analysis
    # libvirt let camvirtd in through the polkit rule, not because anyone may: another user is refused.
    assert as_user(container, 'camvirtd', 'virsh', '-c', LIBVIRT_URI, 'list').returncode == 0
    refused = as_user(container, 'nobody', 'virsh', '-c', LIBVIRT_URI, 'list')
    assert refused.returncode != 0 and "action 'org.libvirt.unix.manage'" in refused.stderr, refused.stderr

    # camvirt init / kill through it.
    init = in_container(container, 'init', 'cam1')
    assert init.returncode == 0, init.stdout + init.stderr
    assert conn.lookupByName('cam1').isActive()

    # SIGKILL: systemd starts it again after RestartSec, serving, the running VM untouched.
    container.systemctl('kill', '--signal', 'SIGKILL', UNIT)
    killed = time.monotonic()
    assert wait_until(lambda: main_pid(container) not in (0, pid) and world.report_status(),
                      RESTART_SEC + RESTART_SLACK, interval=0.1), 'camvirtd was not restarted'
    restarted_after = time.monotonic() - killed
    assert RESTART_SEC * 0.8 <= restarted_after <= RESTART_SEC + RESTART_SLACK, restarted_after
    assert container.show(UNIT, 'NRestarts') == '1'
    assert conn.lookupByName('cam1').isActive()
    assert wait_until(lambda: domain_state(world, 'cam1') == 'running', 15), world.report_status()

    kill = in_container(container, 'kill', 'cam1')
    assert kill.returncode == 0, kill.stdout + kill.stderr
    assert not conn.lookupByName('cam1').isActive()

    # systemctl stop: camvirtd goes within 5 s (SIGTERM, not the stop timeout's SIGKILL).
    started = time.monotonic()
    container.systemctl('stop', UNIT, timeout=30)
    stop_seconds = time.monotonic() - started
    assert stop_seconds < STOP_LIMIT, stop_seconds
    assert (container.show(UNIT, 'ActiveState'), container.show(UNIT, 'Result')) == ('inactive', 'success')
    assert world.report_status() is None

    # libvirt not up: camvirtd starts all the same, serves, and connects once libvirt is back.
    container.systemctl('stop', 'libvirtd.service', *LIBVIRT_UNITS)
    container.systemctl('start', UNIT, timeout=60)
    assert container.show(UNIT, 'ActiveState') == 'active'
    assert libvirt_connected(world) is False
    container.systemctl('start', *LIBVIRT_UNITS)
    assert wait_until(lambda: libvirt_connected(world), 20), world.report_status()
    container.systemctl('stop', UNIT, timeout=30)

    # The journal holds camvirtd's own lines, from all three runs.
    journal = container.run('journalctl', '--no-pager', '-o', 'cat', '-u', UNIT).stdout
    assert len(re.findall(r'camvirtd serving PYRO:', journal)) == 3, journal
    assert 'initialize (cam1) succeeded' in journal and 'shutdown (cam1) succeeded' in journal
    assert 'cannot connect to libvirt at ' + LIBVIRT_URI in journal, journal
    assert 'reconnected to libvirt at ' + LIBVIRT_URI in journal, journal
    assert 'status=9/KILL' in journal, journal

    # A config enabled on the wrong host (its address is not this machine's): camvirtd exits 78 and the
    # unit gives up at once instead of restarting it every RestartSec forever.
    wrong = 'camvirtd@wrong.service'
    # (/etc/camvirtd/wrong.json and registry.d/wrong.json: see write_etc)
    assert container.systemctl('start', wrong, check=False, timeout=60).returncode != 0
    assert wait_until(lambda: container.show(wrong, 'ActiveState') == 'failed', 15)
    assert (container.show(wrong, 'ExecMainStatus'), container.show(wrong, 'NRestarts')) == ('78', '0')
    assert container.show(wrong, 'SubState') == 'failed'  # not 'auto-restart'
    journal = container.run('journalctl', '--no-pager', '-o', 'cat', '-u', wrong).stdout
    assert 'that address is not on this host' in journal, journal
