"""Real camera guests' domain XML: the cameras in the kernel arguments, ports forwarded, a stable UUID."""

import os
import xml.etree.ElementTree as ET

from rockit.camvirt.shared.registry import DaemonAddress
from testworld.qemuworld import FIRST_GUEST_PORT, guest_xml, path_problems
from testworld.simcamd import ABSENT, ANSWERS, HUNG

CAMERAS = [(DaemonAddress('a', 'camd_a', '127.0.0.1', 21001), 'cam1', ANSWERS),
           (DaemonAddress('b', 'camd_b', '127.0.0.2', 21002), 'cam2', HUNG),
           (DaemonAddress('c', 'camd_c', '127.0.0.1', 21003), 'cam3', ABSENT)]


def parsed(**kwargs):
    arguments = dict(name='das-vm', cameras=CAMERAS, kernel='/cache/vmlinux', initrd='/cache/initrd.img',
                     folder='/tmp/sb1')
    arguments.update(kwargs)
    return ET.fromstring(guest_xml(**arguments))


def test_each_camera_is_served_in_the_guest_and_forwarded_from_its_registry_address():
    domain = parsed()
    cmdline = domain.findtext('os/cmdline').split()
    assert [a for a in cmdline if a.startswith('cam=')] == [
        'cam={}:camd_a:cam1:answers'.format(FIRST_GUEST_PORT),
        'cam={}:camd_b:cam2:hung'.format(FIRST_GUEST_PORT + 1),
        'cam={}:camd_c:cam3:absent'.format(FIRST_GUEST_PORT + 2)]
    netdev = [a.get('value') for a in domain.iter('{http://libvirt.org/schemas/domain/qemu/1.0}arg')][1]
    assert netdev.split(',')[2:] == ['hostfwd=tcp:127.0.0.1:21001-:{}'.format(FIRST_GUEST_PORT),
                                     'hostfwd=tcp:127.0.0.2:21002-:{}'.format(FIRST_GUEST_PORT + 1),
                                     'hostfwd=tcp:127.0.0.1:21003-:{}'.format(FIRST_GUEST_PORT + 2)]


def test_the_power_button_works_unless_asked_otherwise():
    assert 'cam_acpi=1' in parsed().findtext('os/cmdline').split()
    assert 'cam_acpi=0' in parsed(ignores_power_button=True).findtext('os/cmdline').split()


def test_the_guest_names_its_sandbox_and_writes_its_console_there():
    domain = parsed()
    assert domain.findtext('name') == 'das-vm'
    assert 'cam_sandbox=/tmp/sb1' in domain.findtext('os/cmdline').split()
    assert domain.find('devices/serial/source').get('path') == '/tmp/sb1/state/consoles/das-vm.console'
    assert domain.get('type') == 'qemu'  # TCG: KVM hangs on these hosts


def test_the_uuid_is_the_same_for_the_same_sandbox_and_name_only():
    assert parsed().findtext('uuid') == parsed().findtext('uuid')
    assert parsed().findtext('uuid') != parsed(name='other').findtext('uuid')
    assert parsed().findtext('uuid') != parsed(folder='/tmp/sb2').findtext('uuid')


def test_a_folder_the_kernel_command_line_would_split_is_refused():
    assert path_problems('/tmp/sb1') == []
    assert path_problems('/tmp/my sandbox') == [
        '/tmp/my sandbox: the sandbox folder must have no whitespace in its path for --qemu (the guest gets it '
        'as a kernel argument)']


def test_the_guests_pythonpath_holds_both_packages():
    # The guest runs `python -m testworld.simcamd` with PYTHONPATH=repository().
    from testworld.qemuworld import repository
    assert os.path.isdir(os.path.join(repository(), 'testworld'))
    assert os.path.isdir(os.path.join(repository(), 'rockit', 'camvirt'))
