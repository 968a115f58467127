"""Camera passthrough devices as plain data: a domain XML's <hostdev> elements, the host's node devices
as libvirt describes them (nodeDeviceLookup...XMLDesc), which node device each hostdev names, and
the words for them. No libvirt import: the client renders status with these too.

The XML comes from libvirt itself (domain and node device XMLDesc), so the stdlib parser is enough.
"""

import xml.etree.ElementTree as ElementTree
from collections import namedtuple

USB = 'usb'
PCI = 'pci'
_KIND_WORDS = {USB: 'USB', PCI: 'PCI'}

# One <hostdev> of a domain. kind: its type ('usb', 'pci', or another, then not understood);
# vendor/product: USB ids (ints) or None; bus/device: USB address (ints) or None; pci: (domain, bus,
# slot, function) or None; alias: the domain XML's <alias name=...> or None; optional:
# startupPolicy='optional' (libvirt starts the domain without it); source: the <source> attributes
# as text, for kinds we do not understand.
Hostdev = namedtuple('Hostdev', ['kind', 'vendor', 'product', 'bus', 'device', 'pci', 'alias',
                                 'optional', 'source'])

# One host device libvirt lists (USB or PCI): its libvirt name, kind, ids, address and the
# vendor/product names libvirt knows.
NodeDevice = namedtuple('NodeDevice', ['name', 'kind', 'vendor', 'product', 'bus', 'device', 'pci',
                                       'label'])


def parse_uint(text):
    """An unsigned number as libvirt reads one (C strtoul with base 0: 0x.. hex, 0.. octal, else
    decimal); None when absent or not a number."""
    if text is None:
        return None
    text = text.strip().lower()
    try:
        if text.startswith('0x'):
            return int(text[2:], 16)
        if len(text) > 1 and text.startswith('0'):
            return int(text[1:], 8)
        return int(text, 10)
    except ValueError:
        return None


def _attr_number(element, name):
    return None if element is None else parse_uint(element.get(name))


def _child_number(element, name):
    child = element.find(name)
    return None if child is None else parse_uint(child.text)


def parse_hostdev(element):
    """A Hostdev for one <hostdev> element."""
    kind = element.get('type') or element.get('mode') or 'unknown'
    source = element.find('source')
    if source is None:
        source = ElementTree.Element('source')
    address = source.find('address')
    alias = element.find('alias')
    pci = None
    if kind == PCI and address is not None:
        pci = tuple(_attr_number(address, part) for part in ('domain', 'bus', 'slot', 'function'))
        pci = (pci[0] or 0,) + pci[1:]  # libvirt takes a missing PCI domain as 0
    usb_address = address if kind == USB else None
    return Hostdev(
        kind=kind,
        vendor=_attr_number(source.find('vendor'), 'id') if kind == USB else None,
        product=_attr_number(source.find('product'), 'id') if kind == USB else None,
        bus=_attr_number(usb_address, 'bus'),
        device=_attr_number(usb_address, 'device'),
        pci=pci,
        alias=alias.get('name') if alias is not None else None,
        optional=source.get('startupPolicy') == 'optional',
        source=_source_text(source))


def _source_text(source):
    """'adapter name=scsi_host0, address bus=0 target=0 unit=0' for a kind we do not understand."""
    parts = []
    for element in source.iter():
        attributes = ' '.join('{}={}'.format(k, v) for k, v in sorted(element.attrib.items()))
        if element is not source and (attributes or (element.text or '').strip()):
            parts.append(' '.join(filter(None, [element.tag, attributes, (element.text or '').strip()])))
    return ', '.join(parts)


def parse_hostdevs(domain_xml):
    """The Hostdevs of a domain XML, in document order."""
    root = ElementTree.fromstring(domain_xml)
    return [parse_hostdev(element) for element in root.findall('./devices/hostdev')]


def understood(hostdev):
    """Whether camvirtd can tell if the device is on the host: USB by ids or address, PCI by address."""
    if hostdev.kind == USB:
        by_ids = hostdev.vendor is not None and hostdev.product is not None
        by_address = hostdev.bus is not None and hostdev.device is not None
        return by_ids or by_address
    if hostdev.kind == PCI:
        return hostdev.pci is not None and None not in hostdev.pci
    return False


def id_text(hostdev):
    """'03c3:2600', 'bus 1 device 5', '03c3:2600 at bus 1 device 5', '0000:03:00.0', or the source."""
    if hostdev.kind == USB:
        parts = []
        if hostdev.vendor is not None and hostdev.product is not None:
            parts.append('{:04x}:{:04x}'.format(hostdev.vendor, hostdev.product))
        if hostdev.bus is not None and hostdev.device is not None:
            parts.append('bus {} device {}'.format(hostdev.bus, hostdev.device))
        return ' at '.join(parts) or hostdev.source
    if hostdev.kind == PCI and understood(hostdev):
        return '{:04x}:{:02x}:{:02x}.{:x}'.format(*hostdev.pci)
    return hostdev.source


def kind_word(kind):
    return _KIND_WORDS.get(kind, kind)


def describe(kind, ident, name=None):
    """'USB device 03c3:2600 (ZWO ASI2600MM Pro)': how operators are told about a device."""
    text = '{} device {}'.format(kind_word(kind), ident).rstrip()
    return '{} ({})'.format(text, name) if name else text


# --- the host's devices ---------------------------------------------------------------------------

def parse_node_device(xml):
    """A NodeDevice for a node device XML, or None when it is neither a USB device nor a PCI one."""
    root = ElementTree.fromstring(xml)
    name = root.findtext('name')
    for capability in root.findall('capability'):
        kind = {'usb_device': USB, 'pci': PCI}.get(capability.get('type'))
        if kind is None:
            continue
        vendor, product = capability.find('vendor'), capability.find('product')
        label = ' '.join(filter(None, [(e.text or '').strip() for e in (vendor, product) if e is not None]))
        pci = None
        if kind == PCI:
            pci = tuple(_child_number(capability, part) for part in ('domain', 'bus', 'slot', 'function'))
        return NodeDevice(name=name, kind=kind, vendor=_attr_number(vendor, 'id'),
                          product=_attr_number(product, 'id'),
                          bus=_child_number(capability, 'bus') if kind == USB else None,
                          device=_child_number(capability, 'device') if kind == USB else None,
                          pci=pci, label=label or None)
    return None


def matches(hostdev, node):
    """Whether node is a device libvirt would pass through for hostdev (every criterion it names)."""
    if not understood(hostdev) or node.kind != hostdev.kind:
        return False
    if hostdev.kind == PCI:
        return node.pci == hostdev.pci
    criteria = [(hostdev.vendor, node.vendor), (hostdev.product, node.product),
                (hostdev.bus, node.bus), (hostdev.device, node.device)]
    return all(wanted is None or wanted == got for wanted, got in criteria)


def find_node_device(hostdev, nodes):
    """The first of nodes that hostdev names, or None."""
    return next((node for node in nodes if matches(hostdev, node)), None)


# --- report_status entries and their words (the client uses these too) --------------------------

def device_entry(hostdev, node, known_name=None, waiting=False):
    """One report_status() 'devices' entry: kind, id, name, present, optional, understood, waiting.
    present is None for a kind camvirtd does not understand (it cannot tell)."""
    is_understood = understood(hostdev)
    name = (node.label if node is not None else None) or known_name or hostdev.alias
    return {'kind': hostdev.kind, 'id': id_text(hostdev), 'name': name,
            'present': (node is not None) if is_understood else None,
            'optional': hostdev.optional, 'understood': is_understood, 'waiting': bool(waiting)}


def entry_text(entry):
    """'USB device 03c3:2600 (ZWO ASI2600MM Pro) present', 'absent', 'absent (optional)', ..."""
    if not entry.get('understood'):
        presence = 'not checked'
    else:
        presence = 'present' if entry.get('present') else 'ABSENT'
    if entry.get('optional'):
        presence += ' (optional)'
    return '{} {}'.format(describe(entry.get('kind'), entry.get('id'), entry.get('name')), presence)


def waiting_text(domain_entry):
    """'waiting for USB device 03c3:2600' while initialize() waits for the domain's devices, else ''."""
    waiting = [describe(e.get('kind'), e.get('id'), e.get('name'))
               for e in domain_entry.get('devices') or [] if e.get('waiting')]
    return 'waiting for {}'.format(', '.join(waiting)) if waiting else ''


def absent_summary(domain_entry):
    """'absent: USB 03c3:2600' for the fleet view; '2 present, 1 not checked' when none is absent;
    '' without devices."""
    devices = domain_entry.get('devices') or []
    absent = [e for e in devices if e.get('understood') and not e.get('present')]
    if absent:
        return 'absent: ' + ', '.join('{} {}{}'.format(kind_word(e.get('kind')), e.get('id'),
                                                      ' (optional)' if e.get('optional') else '')
                                      for e in absent)
    present = sum(1 for e in devices if e.get('understood'))
    unchecked = len(devices) - present
    return ', '.join(filter(None, ['{} present'.format(present) if present else '',
                                   '{} not checked'.format(unchecked) if unchecked else '']))
