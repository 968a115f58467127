"""End to end: camvirt-sandbox itself: its world, and that it leaves nothing behind when it stops."""

import os
import signal
import socket
import subprocess
import time

import pytest

from .e2e_world import SANDBOX, process_alive, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(('127.0.0.1', port)) == 0


def test_the_sandbox_plays_camera_vms_after_their_boot_delay(make_process_world):
    world = make_process_world()
    ready = world.start_sandbox(boot_delay=0.5)
    assert ready.startswith('sandbox ready: libvirt {} domains cam1, cam2'.format(world.uri))
    assert world.virsh('list', '--all', '--name').split() == ['test', 'cam1', 'cam2']
    port = world.daemons['e2e_camd_cam1']['port']
    assert not port_open(port)

    started = time.monotonic()
    world.virsh('start', 'cam1')
    assert wait_until(lambda: port_open(port), 5)
    assert time.monotonic() - started >= 0.5
    assert world.sandbox.out.wait_for(r'^cam1: booted; camd of camera cam1 answers at PYRO:', 5)

    world.virsh('destroy', 'cam1')
    assert wait_until(lambda: not port_open(port), 5)
    assert world.sandbox.out.wait_for(r'^cam1: powered off', 5)


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_the_sandbox_stops_everything_it_started(make_process_world, signum):
    world = make_process_world()
    # A folder the sandbox makes itself, and so removes.
    folder = os.path.join(world.folder, 'sb')
    world.start_sandbox('--dir', folder)
    with open(os.path.join(folder, 'libvirtd.pid')) as f:
        libvirtd = int(f.read())
    assert libvirtd in world.libvirtd_pids  # the one its ready line names
    subprocess.run(['virsh', '-c', 'test+unix:///default?socket={}/libvirt-sock'.format(folder), 'start', 'cam1'],
                   capture_output=True, timeout=30, check=True)
    port = world.daemons['e2e_camd_cam1']['port']
    assert wait_until(lambda: port_open(port), 5)

    world.sandbox.signal(signum)
    assert world.sandbox.wait(15) == 0, world.sandbox.describe()
    assert world.sandbox.out.wait_for(r'^sandbox stopped$', 5)
    # Its only word on stderr: the config's camvirtd would not find this sandbox's libvirtd.
    assert world.sandbox.err.text() == 'camvirt-sandbox: note: camvirtd with {} looks for libvirt at {}, ' \
                                       'not in {}'.format(world.config_path, world.uri, folder)
    assert not process_alive(libvirtd)
    assert not os.path.exists(folder)
    assert not port_open(port)


def test_a_sandbox_killed_outright_takes_its_libvirtd_along(make_process_world):
    world = make_process_world()
    world.start_sandbox()
    libvirtd = world.libvirtd_pid()
    world.sandbox.signal(signal.SIGKILL)
    assert wait_until(lambda: not process_alive(libvirtd), 10)


def test_a_second_sandbox_on_the_same_folder_is_refused(make_process_world):
    world = make_process_world()
    world.start_sandbox()
    second = subprocess.run([SANDBOX, world.config_path], env=world.env, capture_output=True, text=True,
                            timeout=30)
    assert second.returncode == 1
    assert second.stderr.strip() == 'camvirt-sandbox: {}/libvirt-sock is in use: another sandbox runs there ' \
                                    '(give --dir)'.format(world.folder)
    assert world.virsh('domstate', 'cam1') == 'shut off'  # the first one carries on
