"""End to end, a camera passthrough device that is not on the host: the sandbox has no USB
or PCI devices to pass through, so a guest given a USB hostdev (camvirt-sandbox --usb-hostdev) shows
it absent. camvirtd says so clearly before libvirt is asked to start the domain; what libvirt itself
says when asked anyway is shown beside it (the test driver starts it without complaint, QEMU refuses).
"""

import json
import os
import signal
import subprocess

import pytest

from .e2e_world import COMMAND_TIMEOUT, wait_until

pytestmark = [pytest.mark.e2e]

ABSENT_LINE = ('  camera {camera} (domain {domain}): USB device 03c3:2600 is not on this host: is the camera '
               'powered and plugged in?')


def virsh_start(world, domain):
    return subprocess.run(['virsh', '-c', world.uri, 'start', domain], capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT)


def absent_device_init(world, camera, domain):
    """`camvirt init`: fails, with camvirtd's line for the device in the failure summary."""
    result = world.camvirt('init')
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.endswith('{}: VM shut off; waiting for USB device 03c3:2600; camera {} OFFLINE'.format(
        domain, camera)) for line in lines), lines
    failed = next(i for i, line in enumerate(lines) if line.startswith('command failed in '))
    summary = lines[failed + 1:]
    assert summary == [ABSENT_LINE.format(camera=camera, domain=domain)]
    return result


def test_simulated_guest_with_an_absent_usb_device(make_process_world):
    world = make_process_world(initialize_timeout=3).start('--usb-hostdev', 'cam2=03c3:2600')
    devices = {d['name']: d['devices'] for d in world.status()['domains']}
    assert devices['cam1'] == []
    assert [(d['kind'], d['id'], d['present']) for d in devices['cam2']] == [('usb', '03c3:2600', False)]
    absent_device_init(world, 'cam2', 'cam2')
    assert world.domstate('cam1') == 'running'  # the other camera goes on
    assert world.domstate('cam2') == 'shut off'
    assert 'domain cam2: USB device 03c3:2600 ABSENT' in world.camvirt('status').stdout.splitlines()
    # libvirt's test driver would have started it without complaint: only camvirtd's check tells.
    assert virsh_start(world, 'cam2').returncode == 0
    rows = json.loads(world.camvirt('status', '--all', '--json').stdout)
    assert {row['domain']: row['devices'] for row in rows} == {'cam1': '', 'cam2': 'absent: USB 03c3:2600'}


def test_devices_are_read_again_when_camvirtd_reconnects(make_process_world):
    """cam2 is redefined naming another device (camvirtd sees it at the next command); libvirtd is
    killed, and the sandbox's new one defines cam2 as it was: camvirtd shows the original device
    again after reconnecting, with no command in between."""
    world = make_process_world().start('--usb-hostdev', 'cam2=03c3:2600')
    xml = world.virsh('dumpxml', 'cam2').replace("id='0x2600'", "id='0x2601'")
    world.write('cam2.xml', xml)
    world.virsh('define', os.path.join(world.folder, 'cam2.xml'))
    assert world.camvirt('kill').returncode == 0  # a command: devices read again

    def cam2_device():
        status = world.report_status()
        return status and status['libvirt_connected'] and status['domains'][1]['devices'][0]['id']

    assert cam2_device() == '03c3:2601'
    os.kill(world.libvirtd_pid(), signal.SIGKILL)
    assert world.sandbox.out.wait_for(r'^sandbox: libvirtd restarted', 15), world.sandbox.describe()
    world.libvirtd_pids.add(world.libvirtd_pid())
    assert wait_until(lambda: cam2_device() == '03c3:2600', 15), world.camvirtd.describe()


@pytest.mark.qemu
def test_qemu_guest_with_an_absent_usb_device(make_process_world):
    world = make_process_world(cameras={'qvm3': ['qcam3']}, initialize_timeout=3, qemu=True)
    world.start('--usb-hostdev', 'qvm3=03c3:2600')
    result = absent_device_init(world, 'qcam3', 'qvm3')
    assert world.domstate('qvm3') == 'shut off'  # camvirtd never asked libvirt to start it
    libvirt_says = virsh_start(world, 'qvm3')
    print('camvirtd: {}\nlibvirt, asked anyway: {}'.format(result.stdout.splitlines()[-1].strip(),
                                                          libvirt_says.stderr.strip()))
    assert libvirt_says.returncode != 0
    # A host with USB says 'Did not find USB device 3c3:2600'; this one has no USB bus at all:
    # "cannot open directory '/sys/bus/usb/devices'". Either way, terse, and only at start.
    assert 'usb' in libvirt_says.stderr.lower()
