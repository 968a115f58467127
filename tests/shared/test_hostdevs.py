"""Hostdevs and node devices as data: parsing libvirt's XML (as the test driver gives it back),
matching, and the words operators read."""

import libvirt
import pytest
from devworld import PCI, PCI_ABSENT, SCSI, USB_BY_ADDRESS, USB_BY_IDS, USB_OPTIONAL_ABSENT, device_driver

from rockit.camvirt.shared.hostdevs import (
    absent_summary,
    describe,
    device_entry,
    find_node_device,
    id_text,
    parse_hostdevs,
    parse_node_device,
    parse_uint,
    understood,
    waiting_text,
)


@pytest.mark.parametrize('text,value', [
    ('5', 5), ('0x03c3', 0x3c3), ('0X2600', 0x2600), ('010', 8), ('0', 0), (' 7 ', 7),
    ('', None), ('x', None), ('09', None), (None, None),
])
def test_parse_uint_reads_numbers_as_libvirt_does(text, value):
    assert parse_uint(text) == value


@pytest.fixture
def driver_world(tmp_path):
    """A test driver world read from a driver XML: one domain with every kind of hostdev."""
    path = device_driver(tmp_path, [[USB_BY_IDS, USB_BY_ADDRESS, PCI, PCI_ABSENT, SCSI,
                                     USB_OPTIONAL_ABSENT]])(['devs'], {})
    conn = libvirt.open('test://' + path)
    yield conn
    conn.close()


def test_hostdevs_and_node_devices_from_libvirt_match(driver_world):
    hostdevs = parse_hostdevs(driver_world.lookupByName('devs').XMLDesc(0))
    nodes = [parse_node_device(d.XMLDesc(0)) for d in driver_world.listAllDevices(0)]
    nodes = [n for n in nodes if n is not None]  # the driver's scsi hosts are neither USB nor PCI
    assert sorted(n.name for n in nodes) == ['pci_0000_03_00_0', 'usb_1_5']
    found = [find_node_device(h, nodes) for h in hostdevs]
    assert [n.name if n else None for n in found] == [
        'usb_1_5', 'usb_1_5', 'pci_0000_03_00_0', None, None, None]
    assert [understood(h) for h in hostdevs] == [True, True, True, True, False, True]
    assert [id_text(h) for h in hostdevs[:4]] == [
        '03c3:2600', 'bus 1 device 5', '0000:03:00.0', '0000:04:00.0']
    assert 'adapter name=scsi_host0' in id_text(hostdevs[4])
    assert [h.optional for h in hostdevs] == [False] * 5 + [True]


def test_a_usb_hostdev_naming_ids_and_address_needs_both_to_match(driver_world):
    nodes = [parse_node_device(d.XMLDesc(0)) for d in driver_world.listAllDevices(0)]
    both = parse_hostdevs("""<domain><devices><hostdev mode='subsystem' type='usb'><source>
        <vendor id='0x03c3'/><product id='0x2600'/><address bus='1' device='6'/></source></hostdev>
        </devices></domain>""")[0]
    assert id_text(both) == '03c3:2600 at bus 1 device 6'
    assert find_node_device(both, [n for n in nodes if n]) is None


def test_hostdevs_without_what_we_need_are_not_understood():
    hostdevs = parse_hostdevs("""<domain><devices>
        <hostdev mode='subsystem' type='usb'><source><vendor id='0x03c3'/></source></hostdev>
        <hostdev mode='capabilities' type='storage'><source><block>/dev/sdf1</block></source></hostdev>
        <hostdev mode='subsystem' type='pci'><source><address bus='0x03' slot='0x00'/></source></hostdev>
        <hostdev mode='subsystem' type='mdev' model='vfio-pci'><source>
          <address uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/></source></hostdev>
        </devices></domain>""")
    assert [understood(h) for h in hostdevs] == [False, False, False, False]
    assert [h.kind for h in hostdevs] == ['usb', 'storage', 'pci', 'mdev']
    assert id_text(hostdevs[1]) == 'block /dev/sdf1'
    entry = device_entry(hostdevs[3], None)
    assert (entry['present'], entry['understood']) == (None, False)


def test_words():
    assert describe('usb', '03c3:2600') == 'USB device 03c3:2600'
    assert describe('pci', '0000:03:00.0', 'Xilinx Frame grabber') == \
        'PCI device 0000:03:00.0 (Xilinx Frame grabber)'
    entry = {'kind': 'usb', 'id': '03c3:2600', 'name': None, 'present': False, 'optional': False,
             'understood': True, 'waiting': True}
    unchecked = dict(entry, kind='scsi', id='x', understood=False, present=None, waiting=False)
    optional = dict(entry, id='03c3:1600', optional=True, waiting=False)
    assert waiting_text({'devices': [entry, unchecked, optional]}) == 'waiting for USB device 03c3:2600'
    assert waiting_text({'devices': []}) == ''
    assert absent_summary({'devices': [entry, optional]}) == 'absent: USB 03c3:2600, USB 03c3:1600 (optional)'
    assert absent_summary({'devices': [dict(entry, present=True), unchecked]}) == '1 present, 1 not checked'
    assert absent_summary({'devices': []}) == ''
