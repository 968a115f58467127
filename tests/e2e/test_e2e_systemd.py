"""camvirtd@.service under a real systemd: this machine's systemd 252 (Rocky 9's major version) booted
in a container, our RPMs installed into it by rpm (their %pre, file lists, modes and scriptlets run),
Debian's own python3-libvirt, python3-pyro4, python3-jsonschema and python3-rich, and every hardening
line of the unit on. Then an upgrade to a newer build with an instance running, an erase, and the
move from a package set laid out as today's upstream (rpms.py says how each set is built).

libvirt is the container's own: Debian's libvirtd.service, socket-activated, with libvirt's default
access control (its socket open to all, each client asked about through polkit). camvirtd runs as the
camvirtd user, which only the polkit rule the server package installed lets in, as on a Rocky host. The
domains live on that libvirtd's test driver; this test defines them and plays their guests (simulated
camds on 127.0.0.1, which the container shares with the host) through the container's libvirt socket.
"""

import contextlib
import json
import os
import re
import threading
import time
import uuid

import libvirt
import Pyro4.errors
import pytest

from rockit.camvirt.shared.registry import DaemonAddress
from rockit.camvirt.shared.version import version_from_git
from rockit.camvirt.virt.eventloop import start_event_loop
from testworld.sandbox import SimulatedGuests
from testworld.simcamd import ANSWERS, HUNG

from .e2e_world import REPO, wait_until
from .nspawn import Container, nspawn_problem
from .rpms import CONTAINER_SITELIB, IN_CONTAINER, PackageSets, installed, rpm

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


def write_etc(container, world):
    """/etc/camvirtd/test.json (the world's config, with the container's system libvirtd) and
    /etc/camvirtd/registry.d/test.json (the world's ephemeral ports), beside what the packages put there."""
    container.write('/etc/camvirtd/test.json', json.dumps(dict(world.config, libvirt_uri=LIBVIRT_URI)))
    container.write('/etc/camvirtd/registry.d/test.json',
                    json.dumps({'daemons': world.daemons, 'machines': {'LocalHost': '127.0.0.1'}}))
    # A config enabled on the wrong host: its address is not this machine's.
    container.write('/etc/camvirtd/registry.d/wrong.json', json.dumps(
        {'machines': {'Elsewhere': '192.0.2.1'},  # TEST-NET-1: never this host
         'daemons': {'wrong_camvirt': {'object_id': 'wrong', 'host': 'Elsewhere', 'port': 9999}}}))
    container.write('/etc/camvirtd/wrong.json',
                    json.dumps(dict(world.config, daemon='wrong_camvirt', libvirt_uri=LIBVIRT_URI)))

@pytest.fixture(scope='module')
def packages(tmp_path_factory):
    """Our RPMs at this commit's version and the next, and upstream's layout (rpms.py)."""
    return PackageSets(tmp_path_factory.mktemp('rpms'), version_from_git(REPO) or '20261203000000')


def booted(tmp_path, packages):
    """A booted container whose /usr takes what rpm writes (the host's stays as it is), the
    packages' folder at IN_CONTAINER."""
    upper = tmp_path / 'usr-upper'
    upper.mkdir()
    container = Container('camvirt-' + uuid.uuid4().hex[:8], usr_upper=str(upper),
                          binds=[(packages.folder, IN_CONTAINER)], log_path=str(tmp_path / 'console.log'))
    container.boot()
    # The host's polkit rules folder is polkitd's, mode 0700; the volatile container allocates its
    # users afresh, so that owner is another user there and polkitd could read no rule at all.
    container.run('chmod', '0755', '/usr/share/polkit-1/rules.d')
    return container


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


def simulated_cameras(world, hung=()):
    """{domain: [(camd address, camera id, behaviour)]} of the world's config; the cameras in `hung`
    accept connections but never answer."""
    cameras = {}
    for domain, ids in world.config['domains'].items():
        cameras[domain] = []
        for camera_id, daemon in ids.items():
            a = world.daemons[daemon]
            behaviour = HUNG if camera_id in hung else ANSWERS
            cameras[domain].append((DaemonAddress(daemon, a['object_id'], a['host'], a['port']), camera_id, behaviour))
    return cameras


@pytest.fixture
def system(make_process_world, tmp_path, packages):
    """(container, world, conn): the container booted with our RPMs installed (not started yet), its
    libvirtd up with the world's domains, their guests played here; conn: this test's connection."""
    with installed_system(make_process_world(), tmp_path, packages) as found:
        yield found


@pytest.fixture
def system_with_a_hung_camera(make_process_world, tmp_path, packages):
    """The same, with cam2's camd hung and a minute for initialize: a command that runs until stopped."""
    world = make_process_world(initialize_timeout=60)
    with installed_system(world, tmp_path, packages, hung=('cam2',)) as found:
        yield found


@contextlib.contextmanager
def installed_system(world, tmp_path, packages, hung=()):
    problem = nspawn_problem()
    if problem:
        pytest.fail('cannot boot a container: ' + problem)
    start_event_loop()  # before the connection opens: the simulated guests follow its events
    container = None
    conn = guests = None
    guest_log = []
    try:
        container = booted(tmp_path, packages)
        rpm(container, '-i', '--nodeps', *packages.inside(packages.ours.values()))
        write_etc(container, world)
        start_libvirtd(container)
        conn = connect(container)
        guests = SimulatedGuests(simulated_cameras(world, hung), BOOT_DELAY, log=guest_log.append).bring_up(conn, None)
        yield container, world, conn
    finally:
        journal = container.run('journalctl', '--no-pager', '-u', UNIT, '-u', 'libvirtd.service',
                                check=False).stdout if container and container.init_pid else ''
        if guests is not None:
            guests.close()
        if conn is not None:
            try:
                conn.close()
            except libvirt.libvirtError:
                pass  # libvirtd went first
        if container:
            container.stop()
        print('--- journal\n{}\n--- guests\n{}'.format(journal, '\n'.join(guest_log)))  # shown on failure
        print('--- console\n' + (container.console() if container else ''))


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

def test_rpm_upgrade_restarts_the_instance_with_its_vms_running_and_erase_stops_it(system, packages):
    container, world, conn = system
    container.systemctl('start', UNIT, timeout=60)
    init = in_container(container, 'init', 'cam1')
    assert init.returncode == 0, init.stdout + init.stderr
    vm_id = conn.lookupByName('cam1').ID()
    pid = main_pid(container)

    # rpm -U to the next build: the old server package's %postun restarts every running instance.
    rpm(container, '-U', '--nodeps', *packages.inside(packages.ours_next.values()))
    assert installed(container) == {name: packages.next_version for name in packages.ours}
    assert main_pid(container) not in (0, pid)  # restarted before rpm returned
    assert container.show(UNIT, 'ActiveState') == 'active' and world.report_status() is not None
    assert container.show(UNIT, 'NRestarts') == '0'  # by the scriptlet, not by a crash
    # The new process runs the new files: they carry the new version.
    version = container.run('python3', '-c', 'import rockit.camvirt as c; print(c.__version__)').stdout.strip()
    assert version == packages.next_version
    # Its VM ran on, untouched (the same libvirt domain id), and the new camvirtd sees it running.
    assert conn.lookupByName('cam1').isActive() and conn.lookupByName('cam1').ID() == vm_id
    assert wait_until(lambda: domain_state(world, 'cam1') == 'running', 15), world.report_status()
    journal = container.run('journalctl', '--no-pager', '-o', 'cat', '-u', UNIT).stdout
    assert len(re.findall(r'camvirtd serving PYRO:', journal)) == 2, journal

    # rpm -e: %preun stops the instance; the VMs stay as they are; the files go.
    rpm(container, '-e', '--nodeps', *packages.ours)
    assert installed(container) == {}
    assert main_pid(container) == 0 and world.report_status() is None
    assert container.show(UNIT, 'ActiveState') == 'inactive'
    assert conn.lookupByName('cam1').isActive()
    assert container.run('test', '-e', '/usr/bin/camvirtd', check=False).returncode == 1
    assert container.run('test', '-e', '/etc/camvirtd/test.json', check=False).returncode == 0  # not a package's


def test_upgrade_from_upstreams_packages_keeps_the_edited_config(tmp_path, packages):
    problem = nspawn_problem()
    if problem:
        pytest.fail('cannot boot a container: ' + problem)
    container = booted(tmp_path, packages)
    try:
        rpm(container, '-i', '--nodeps', *packages.inside(packages.upstream.values()))
        config = '/etc/camvirtd/sting_das1.json'
        edited = json.loads(container.run('cat', config).stdout)
        edited['initialize_timeout'] = 120
        container.write(config, json.dumps(edited, indent=1))

        # The same five names, each replaced by ours: no file conflict (data-superwasp is not among
        # them: a host of today's site has no superwasp_* config).
        ours = {name: path for name, path in packages.ours.items() if name in packages.upstream}
        assert set(ours) == set(packages.upstream)
        upgrade = rpm(container, '-U', '--nodeps', *packages.inside(ours.values()), check=False)
        assert upgrade.returncode == 0 and 'conflict' not in upgrade.stderr, upgrade.stdout + upgrade.stderr
        assert installed(container) == {name: packages.version for name in ours}

        # The operator's edit stays; ours lands beside it; an unedited upstream config becomes ours.
        assert json.loads(container.run('cat', config).stdout)['initialize_timeout'] == 120
        with open(os.path.join(REPO, 'config', 'sting_das1.json')) as f:
            assert container.run('cat', config + '.rpmnew').stdout == f.read()
        with open(os.path.join(REPO, 'config', 'sting_das2.json')) as f:
            assert container.run('cat', '/etc/camvirtd/sting_das2.json').stdout == f.read()
        # Every other file is as our packages have it (rpm -V names only the edited config).
        verify = rpm(container, '-V', '--nodeps', *ours, check=False).stdout.split('\n')
        assert [line.split()[-1] for line in verify if line.strip()] == [config], verify
        # Upstream's metadata went with its package: one rockit.camvirt, ours.
        infos = container.run('sh', '-c', 'ls -d {}/rockit*camvirt-*'.format(CONTAINER_SITELIB)).stdout.split()
        assert infos == ['{}/rockit.camvirt-{}.dist-info'.format(CONTAINER_SITELIB, packages.version)]
        for command in ('camvirtd', 'camvirt'):
            result = container.run(command, '--help', check=False)
            assert (result.returncode, result.stderr) == (0, ''), command
        shown = container.run('camvirt', 'config', '--json', check=False, env={'CAMVIRTD_CONFIG_PATH': config})
        assert shown.returncode == 0 and '120' in shown.stdout, shown.stdout + shown.stderr
    finally:
        container.stop()


def test_an_upgrade_landing_while_a_command_runs_ends_it_and_loses_nothing(system_with_a_hung_camera, packages):
    container, world, conn = system_with_a_hung_camera
    container.systemctl('start', UNIT, timeout=60)
    init = in_container(container, 'init', 'cam1')
    assert init.returncode == 0, init.stdout + init.stderr

    # opsd's initialize of cam2, whose camd never answers: it would wait its whole minute.
    replies = []

    def opsd():
        try:
            with world.proxy(timeout=300) as proxy:
                replies.append(proxy.initialize(['cam2']))
        except Pyro4.errors.CommunicationError as error:
            replies.append(error)

    caller = threading.Thread(target=opsd, daemon=True)
    caller.start()
    assert wait_until(lambda: (world.report_status() or {}).get('command'), 20), world.report_status()
    assert wait_until(lambda: conn.lookupByName('cam2').isActive(), 20)

    started = time.monotonic()
    rpm(container, '-U', '--nodeps', *packages.inside(packages.ours_next.values()))
    upgrade_seconds = time.monotonic() - started
    caller.join(30)
    # The caller was answered (failed) or its connection closed, at once: not after its minute.
    assert not caller.is_alive() and replies and replies[0] != 0, replies
    assert upgrade_seconds < 30, upgrade_seconds
    status = world.report_status()
    assert status is not None and status['command'] is None
    # The command is on record as failed, by the old instance or as interrupted by the new one.
    assert status['last_command']['status'] == 1, status['last_command']
    journal = container.run('journalctl', '--no-pager', '-o', 'cat', '-u', UNIT).stdout
    assert re.search(r'initialize \(cam2\) (failed|was interrupted)', journal), journal
    # The new instance read the old one's state file (under the unit's sandbox, as written there).
    assert 'nothing remembered' not in journal and 'state restored from' in journal, journal
    # Nothing lost: both VMs run on, and cam1, started by a command that succeeded, should still run.
    assert conn.lookupByName('cam1').isActive() and conn.lookupByName('cam2').isActive()
    assert 'cam1' in status['should_run'], status
