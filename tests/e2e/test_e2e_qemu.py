"""End to end with real QEMU guests (camvirt-sandbox --qemu): guests that take seconds to boot, power
off by ACPI or ignore the button, QEMU processes that die, a libvirtd restarted under running guests.

One world for the module (booting guests costs seconds): qvm1 behaves, qvm2's guest ignores the power
button. Each test first brings the guests it needs to the state it needs. Run alone: pytest -m qemu.
"""

import os
import signal
import time

import pytest

from .e2e_world import OFFLINE, World, camera_labels, domain_states, process_alive, qemu_pids, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.qemu]

SHUTDOWN_TIMEOUT = 5
# Host folders a root libvirtd with the QEMU driver writes to; the sandbox must leave them as they were.
HOST_FOLDERS = ('/etc/libvirt', '/var/lib/libvirt', '/var/cache/libvirt', '/var/log/libvirt', '/run/libvirt')


def listing(folders):
    """Every path under the folders, to compare before and after."""
    paths = set()
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            paths.update(os.path.join(root, name) for name in dirs + files)
    return paths


@pytest.fixture(scope='module')
def world():
    host_before = listing(HOST_FOLDERS)
    world = World(cameras={'qvm1': ['qcam1'], 'qvm2': ['qcam2']}, initialize_timeout=90,
                  shutdown_timeout=SHUTDOWN_TIMEOUT, camera_timeout=1, qemu=True)
    try:
        world.start('--ignores-power-button', 'qvm2')
        yield world
    finally:
        world.close()
        for process in world.processes():
            print(process.describe())  # shown when a test failed
    assert listing(HOST_FOLDERS) == host_before


def running(world, *domains):
    """Starts the domains (a no-op for those already up) and checks that every camera answers."""
    result = world.camvirt('init', *domains)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_init_boots_every_guest_until_its_camera_answers(world):
    world.camvirt('kill', '--force')  # from cold, whatever ran before
    started = time.monotonic()
    result = running(world)
    elapsed = time.monotonic() - started
    print('init of 2 QEMU guests until their camds answered: {:.1f} s'.format(elapsed))

    status = world.status()
    assert domain_states(status) == {'qvm1': 'running', 'qvm2': 'running'}
    assert camera_labels(status) == {'qcam1': 'IDLE', 'qcam2': 'IDLE'}
    assert world.domstate('qvm1') == 'running'
    with world.proxy() as dashboard:
        reply = dashboard.report_camera_status('qcam1')
    assert reply['vm_active'] is True and reply['camera_id'] == 'qcam1'
    assert 'command completed successfully' in result.stdout


def test_kill_powers_a_guest_off_by_acpi(world):
    running(world, 'qvm1')
    started = time.monotonic()
    result = world.camvirt('kill', 'qvm1')
    print('ACPI shutdown of a QEMU guest: {:.1f} s'.format(time.monotonic() - started))

    assert result.returncode == 0, result.stdout + result.stderr
    assert world.domstate('qvm1') == 'shut off'
    # Powered off from inside (the guest's acpid), not destroyed.
    assert world.sandbox.out.wait_for(r'^qvm1: guest powered off$', 5)
    with world.proxy() as dashboard:
        assert dashboard.report_camera_status('qcam1') == OFFLINE


def test_a_guest_that_ignores_the_power_button_is_only_forced_off_when_asked(world):
    running(world, 'qvm2')
    started = time.monotonic()
    refused = world.camvirt('kill', 'qvm2')
    waited = time.monotonic() - started

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert waited >= SHUTDOWN_TIMEOUT
    assert 'qvm2' in refused.stdout + refused.stderr
    assert world.domstate('qvm2') == 'running'
    assert domain_states(world.status())['qvm2'] == 'running'

    forced = world.camvirt('kill', '--force', 'qvm2')
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert world.domstate('qvm2') == 'shut off'
    assert world.sandbox.out.wait_for(r'^qvm2: guest destroyed$', 5)
    assert world.camvirtd.out.wait_for(r'forced power-off of domain qvm2', 5)


def test_a_guest_whose_qemu_process_dies_shows_off_and_its_camera_offline(world):
    running(world, 'qvm1')
    os.kill(world.qemu_pid('qvm1'), signal.SIGKILL)
    killed = time.monotonic()

    assert wait_until(lambda: domain_states(world.report_status())['qvm1'] in ('shut off', 'crashed'), 5)
    print('QEMU killed -> camvirtd status off: {:.2f} s'.format(time.monotonic() - killed))
    assert domain_states(world.status())['qvm1'] in ('shut off', 'crashed')
    with world.proxy() as dashboard:
        assert dashboard.report_camera_status('qcam1') == OFFLINE
    assert world.virsh('domstate', 'qvm1') in ('shut off', 'crashed')


def test_guests_keep_running_through_a_libvirtd_restart(world):
    running(world)
    guests = {name: world.qemu_pid(name) for name in ('qvm1', 'qvm2')}
    old_libvirtd = world.libvirtd_pid()
    os.kill(old_libvirtd, signal.SIGKILL)

    assert world.sandbox.out.wait_for(r'^sandbox: libvirtd restarted', 60), world.sandbox.describe()
    assert all(process_alive(pid) for pid in guests.values())

    def truthful():
        status = world.report_status()
        return status and status['libvirt_connected'] and domain_states(status) == {
            'qvm1': 'running', 'qvm2': 'running'}

    assert wait_until(truthful, 30)
    assert camera_labels(world.status()) == {'qcam1': 'IDLE', 'qcam2': 'IDLE'}
    assert {name: world.qemu_pid(name) for name in guests} == guests  # the same guests, found again
    running(world)


def test_the_sandbox_stops_every_guest_it_started(world):
    running(world)
    assert len(qemu_pids(world.folder)) == 2
    libvirtd = world.libvirtd_pid()
    world.sandbox.signal(signal.SIGTERM)

    assert world.sandbox.wait(30) == 0, world.sandbox.describe()
    assert qemu_pids(world.folder) == []
    assert not os.path.exists(os.path.join(world.folder, 'state'))
    assert not process_alive(libvirtd)
