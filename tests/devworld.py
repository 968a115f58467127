"""Test driver worlds with host devices: a libvirt test driver XML (test:///path) holding the host's
USB and PCI node devices and the world's domains, each with the <hostdev>s a test gives it. Only the
connection that opens it sees that world, so camvirtd's own objects start its
domains."""

import os

# The host's devices in every device world.
ZWO_CAMERA = """
  <device>
    <name>usb_1_5</name>
    <parent>computer</parent>
    <capability type='usb_device'>
      <bus>1</bus>
      <device>5</device>
      <product id='0x2600'>ASI2600MM Pro</product>
      <vendor id='0x03c3'>ZWO</vendor>
    </capability>
  </device>"""
FRAME_GRABBER = """
  <device>
    <name>pci_0000_03_00_0</name>
    <parent>computer</parent>
    <capability type='pci'>
      <class>0x078000</class>
      <domain>0</domain>
      <bus>3</bus>
      <slot>0</slot>
      <function>0</function>
      <product id='0x1234'>Frame grabber</product>
      <vendor id='0x10ee'>Xilinx</vendor>
    </capability>
  </device>"""
HOST_DEVICES = ZWO_CAMERA + FRAME_GRABBER

# <hostdev>s for domains.
USB_BY_IDS = """<hostdev mode='subsystem' type='usb' managed='no'>
  <source><vendor id='0x03c3'/><product id='0x2600'/></source></hostdev>"""
USB_BY_IDS_ABSENT = """<hostdev mode='subsystem' type='usb' managed='no'>
  <source><vendor id='0x03c3'/><product id='0x2601'/></source></hostdev>"""
USB_BY_ADDRESS = """<hostdev mode='subsystem' type='usb' managed='no'>
  <source><address bus='1' device='5'/></source></hostdev>"""
USB_BY_ADDRESS_ABSENT = """<hostdev mode='subsystem' type='usb' managed='no'>
  <source><address bus='1' device='7'/></source></hostdev>"""
USB_OPTIONAL_ABSENT = """<hostdev mode='subsystem' type='usb' managed='no'>
  <source startupPolicy='optional'><vendor id='0x03c3'/><product id='0x1601'/></source></hostdev>"""
PCI = """<hostdev mode='subsystem' type='pci' managed='yes'>
  <source><address domain='0x0000' bus='0x03' slot='0x00' function='0x0'/></source></hostdev>"""
PCI_ABSENT = """<hostdev mode='subsystem' type='pci' managed='yes'>
  <source><address domain='0x0000' bus='0x04' slot='0x00' function='0x0'/></source></hostdev>"""
# A kind libvirt's node devices do not resolve for camvirtd: shown, never a reason to refuse.
SCSI = """<hostdev mode='subsystem' type='scsi' managed='no'>
  <source><adapter name='scsi_host0'/><address bus='0' target='0' unit='0'/></source></hostdev>"""


def domain_xml(name, hostdevs):
    """A shut-off test domain with these hostdevs."""
    return """
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>{}</name>
    <memory>65536</memory>
    <os><type>hvm</type></os>
    <devices>{}</devices>
    <test:runstate>5</test:runstate>
  </domain>""".format(name, ''.join(hostdevs))


def device_driver(folder, hostdevs, host_devices=HOST_DEVICES):
    """World(driver_xml=...) for domains with hostdevs[i] (a list of <hostdev> XML) each."""
    def write(names, _cameras):
        path = os.path.join(str(folder), 'driver.xml')
        domains = ''.join(domain_xml(name, hostdevs[i] if i < len(hostdevs) else [])
                          for i, name in enumerate(names))
        with open(path, 'w') as f:
            f.write('<node>{}{}\n</node>\n'.format(domains, host_devices))
        return path
    return write
