"""Camera passthrough devices through libvirt's test driver (a driver XML with USB and PCI node
devices): camvirtd's own objects read the domains' hostdevs and the host's devices on its one
connection, start the domains whose devices are present, wait for and then refuse the others."""

import threading

import pytest
from devworld import (
    PCI,
    PCI_ABSENT,
    SCSI,
    USB_BY_ADDRESS,
    USB_BY_ADDRESS_ABSENT,
    USB_BY_IDS,
    USB_BY_IDS_ABSENT,
    USB_OPTIONAL_ABSENT,
    device_driver,
)

from rockit.camvirt.client.runner import progress_lines
from rockit.camvirt.shared.constants import CameraState, CommandStatus, VMState
from rockit.camvirt.virt.devices import DevicePresence, read_domain_hostdevs, read_node_devices
from testworld.support import deadline, wait_until

ABSENT_LINE = '{} (domain {}): {} is not on this host: is the camera powered and plugged in?'


def device_world(make_world, tmp_path, hostdevs, **kwargs):
    kwargs.setdefault('domains', len(hostdevs))
    return make_world(driver_xml=device_driver(tmp_path, hostdevs), **kwargs)


def status_of(world, index):
    return world.call('report_status')['domains'][index]


def vm_state(world, index):
    return world.hypervisor.state(world.domain_names[index])


@pytest.mark.parametrize('hostdev,kind,ident,name', [
    (USB_BY_IDS, 'usb', '03c3:2600', 'ZWO ASI2600MM Pro'),
    (USB_BY_ADDRESS, 'usb', 'bus 1 device 5', 'ZWO ASI2600MM Pro'),
    (PCI, 'pci', '0000:03:00.0', 'Xilinx Frame grabber'),
])
def test_a_domain_whose_device_is_present_starts_and_status_shows_it(make_world, tmp_path, hostdev,
                                                                      kind, ident, name):
    world = device_world(make_world, tmp_path, [[hostdev]])
    assert status_of(world, 0)['devices'] == [{
        'kind': kind, 'id': ident, 'name': name, 'present': True, 'optional': False,
        'understood': True, 'waiting': False}]
    assert world.call('initialize') == CommandStatus.Succeeded
    assert status_of(world, 0)['cameras'][0]['state'] == CameraState.Idle


@pytest.mark.parametrize('hostdev,device', [
    (USB_BY_IDS_ABSENT, 'USB device 03c3:2601'),
    (USB_BY_ADDRESS_ABSENT, 'USB device bus 1 device 7'),
    (PCI_ABSENT, 'PCI device 0000:04:00.0'),
])
def test_an_absent_device_fails_its_domain_at_the_deadline_and_the_others_go_on(
        make_world, tmp_path, hostdev, device):
    world = device_world(make_world, tmp_path, [[hostdev], []], initialize_timeout=1.5)
    absent, other = world.domain_names
    assert status_of(world, 0)['devices'][0]['present'] is False
    assert world.call('initialize') == CommandStatus.Failed
    line = ABSENT_LINE.format('camera c1a', absent, device)
    assert line in world.log.text()
    assert world.call('report_status')['last_command']['problems'] == [line]
    # The domain was never started (libvirt's test driver would have started it without complaint),
    # and the other domain runs with its camera answering.
    assert vm_state(world, 0) == VMState.ShutOff
    assert vm_state(world, 1) == VMState.Running
    assert world.call('report_camera_status', 'c2a')['vm_active'] is True
    assert not [p for p in world.call('report_status')['last_command']['problems'] if other in p]


def test_a_domain_without_hostdevs_has_no_devices_and_starts(make_world, tmp_path):
    world = device_world(make_world, tmp_path, [[]])
    assert status_of(world, 0)['devices'] == []
    assert world.call('initialize') == CommandStatus.Succeeded


def test_unresolvable_kinds_and_optional_devices_are_shown_but_never_refuse(make_world, tmp_path):
    world = device_world(make_world, tmp_path, [[SCSI, USB_OPTIONAL_ABSENT, USB_BY_IDS]])
    scsi, optional, camera = status_of(world, 0)['devices']
    assert scsi['kind'] == 'scsi' and scsi['understood'] is False and scsi['present'] is None
    assert 'scsi_host0' in scsi['id']
    assert optional['optional'] is True and optional['present'] is False
    assert camera['present'] is True
    assert world.call('initialize') == CommandStatus.Succeeded
    assert 'optional USB device 03c3:1601 is not on this host; starting without it' in world.log.text()


def test_progress_says_which_device_is_waited_for(make_world, tmp_path):
    world = device_world(make_world, tmp_path, [[USB_BY_IDS_ABSENT]], initialize_timeout=3)
    result = []
    command = threading.Thread(target=lambda: result.append(world.call('initialize')))
    command.start()
    waiting = wait_until(lambda: status_of(world, 0)['devices'][0]['waiting'], seconds=3)
    assert waiting
    lines = progress_lines(None, world.call('report_status'))
    assert 'waiting for USB device 03c3:2601' in lines[0][1]
    command.join(timeout=10)
    assert result == [CommandStatus.Failed]
    assert status_of(world, 0)['devices'][0]['waiting'] is False


def test_a_domain_starts_as_soon_as_its_device_is_there(make_world, tmp_path):
    """The test driver cannot hot-plug, so the device 'arrives' by the domain being redefined to
    name one that is on the host: camvirtd's re-read while waiting must see it and start it."""
    world = device_world(make_world, tmp_path, [[USB_BY_IDS_ABSENT]], initialize_timeout=20)
    name = world.domain_names[0]
    result = []
    command = threading.Thread(target=lambda: result.append(world.call('initialize')))
    command.start()
    assert wait_until(lambda: status_of(world, 0)['devices'][0]['waiting'], seconds=5)
    xml = world.conn.lookupByName(name).XMLDesc(0).replace("id='0x2601'", "id='0x2600'")
    world.conn.defineXML(xml)
    command.join(timeout=15)
    assert result == [CommandStatus.Succeeded]
    assert status_of(world, 0)['devices'][0]['present'] is True


def test_a_device_vanishing_while_its_domain_runs_is_an_error_in_the_log(make_world, tmp_path):
    world = device_world(make_world, tmp_path, [[USB_BY_IDS], [PCI]])
    assert world.call('initialize') == CommandStatus.Succeeded
    conn = world.hypervisor.connection()
    presence = DevicePresence(world.hypervisor, world.domain_names, world.log)
    presence.refresh(conn)
    # The test driver cannot unplug: the reading that follows an unplug is the same minus the device.
    hostdevs = {name: read_domain_hostdevs(conn, name) for name in world.domain_names}
    nodes = [n for n in read_node_devices(conn, ['usb', 'pci']) if n.kind != 'usb']
    presence.update(hostdevs, nodes)
    assert 'domain {}: USB device 03c3:2600 (ZWO ASI2600MM Pro) vanished from this host while the ' \
           'domain runs'.format(world.domain_names[0]) in world.log.text()
    assert 'PCI device' not in world.log.text()
    assert presence.entries(world.domain_names[0])[0]['name'] == 'ZWO ASI2600MM Pro'  # remembered


def test_devices_are_read_again_before_every_command(make_world, tmp_path):
    world = device_world(make_world, tmp_path, [[USB_BY_IDS_ABSENT]], initialize_timeout=1)
    name = world.domain_names[0]
    xml = world.conn.lookupByName(name).XMLDesc(0).replace("id='0x2601'", "id='0x2600'")
    world.conn.defineXML(xml)
    assert status_of(world, 0)['devices'][0]['present'] is False  # no event for a redefinition
    assert world.call('shutdown') == CommandStatus.Succeeded
    assert status_of(world, 0)['devices'][0]['present'] is True


def test_node_device_events_reach_a_presence_on_the_default_test_driver(conn, make_world):
    """The default test driver sends node device events for vHBAs (the only devices it creates):
    camvirtd's subscription reads the host's devices again on each."""
    world = make_world(domains=1)
    presence = world.daemon_object._devices
    read_before = presence._read_at
    device = conn.nodeDeviceCreateXML(VHBA, 0)
    try:
        assert wait_until(lambda: presence._read_at != read_before, seconds=5)
    finally:
        device.destroy()


VHBA = """<device><parent>scsi_host1</parent><capability type='scsi_host'>
  <capability type='fc_host'><wwnn>20000000abcdabcd</wwnn><wwpn>10000000abcdabcd</wwpn></capability>
</capability></device>"""


def test_libvirt_unreachable_reads_nothing(make_world):
    world = make_world(domains=1, libvirt_uri='test+unix:///nonexistent/socket')
    presence = world.daemon_object._devices
    assert presence.refresh() is False
    assert presence.wait_until_present(world.domain_names[0], deadline(0.2)) == []


def test_a_driver_that_cannot_list_devices_leaves_presence_unknown_and_waits_for_nothing(
        make_world, tmp_path):
    world = device_world(make_world, tmp_path, [[USB_BY_IDS_ABSENT]])
    conn = world.hypervisor.connection()
    name = world.domain_names[0]
    presence = DevicePresence(world.hypervisor, world.domain_names, world.log)
    presence.update({name: read_domain_hostdevs(conn, name)}, [], unlisted='no node device driver')
    assert [e['present'] for e in presence.entries(name)] == [None]
    assert presence.missing(name) == []
    assert "cannot list this host's devices (no node device driver): passthrough devices are not " \
           "checked" in world.log.text()


def test_a_running_domain_is_not_waited_for_whatever_its_devices(make_world, tmp_path):
    world = device_world(make_world, tmp_path, [[USB_BY_IDS_ABSENT]], initialize_timeout=5)
    world.conn.lookupByName(world.domain_names[0]).create()  # the test driver starts it regardless
    assert wait_until(lambda: vm_state(world, 0) == VMState.Running)
    assert world.call('initialize') == CommandStatus.Succeeded
    assert status_of(world, 0)['devices'][0]['present'] is False
