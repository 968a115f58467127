"""What reading the passthrough devices costs camvirtd: one DevicePresence.refresh() (each
domain's XML, the host's USB and PCI node devices, matching) on libvirt's test driver, from a driver
XML with N domains (each with a USB hostdev by ids, one by address and a PCI one) and a host with
N*3 USB and N PCI devices. That read runs before every command and every second while a device is
waited for. The test driver is in-process: on a libvirtd each XMLDesc is also a round trip.

    .venv/bin/python bench/devices.py [--runs 25]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import libvirt  # noqa: E402

from rockit.camvirt.virt.devices import DevicePresence  # noqa: E402
from rockit.camvirt.virt.hypervisor import start_event_loop  # noqa: E402


def usb_node(index):
    return """<device><name>usb_1_{i}</name><parent>computer</parent><capability type='usb_device'>
<bus>1</bus><device>{i}</device><product id='0x{i:04x}'>Camera {i}</product><vendor id='0x03c3'>ZWO</vendor>
</capability></device>""".format(i=index)


def pci_node(index):
    return """<device><name>pci_0000_{i:02x}_00_0</name><parent>computer</parent><capability type='pci'>
<domain>0</domain><bus>{i}</bus><slot>0</slot><function>0</function><product id='0x1234'>Grabber</product>
<vendor id='0x10ee'>Xilinx</vendor></capability></device>""".format(i=index)


def domain(index):
    hostdevs = """<hostdev mode='subsystem' type='usb'><source><vendor id='0x03c3'/><product id='0x{a:04x}'/>
</source></hostdev><hostdev mode='subsystem' type='usb'><source><address bus='1' device='{b}'/></source>
</hostdev><hostdev mode='subsystem' type='pci'><source><address domain='0' bus='{c}' slot='0' function='0'/>
</source></hostdev>""".format(a=3 * index + 1, b=3 * index + 2, c=index + 1)
    return """<domain type='test'><name>cam{}</name><memory>65536</memory><os><type>hvm</type></os>
<devices>{}</devices></domain>""".format(index, hostdevs)


class Quiet:
    def info(self, _m):
        pass

    warning = error = info


class FixedHypervisor:
    """Hypervisor's face as DevicePresence sees it, over one plain connection (no reconnects here)."""

    def __init__(self, conn):
        self._conn = conn

    def add_connection_listener(self, _listener):
        pass

    def connection(self):
        return self._conn

    def state(self, _name):
        return 'shut off'


def measure(count, runs, folder):
    path = os.path.join(folder, 'driver-{}.xml'.format(count))
    with open(path, 'w') as f:
        f.write('<node>{}{}{}</node>'.format(''.join(domain(i) for i in range(count)),
                                             ''.join(usb_node(i + 1) for i in range(3 * count)),
                                             ''.join(pci_node(i + 1) for i in range(count))))
    conn = libvirt.open('test://' + path)
    try:
        presence = DevicePresence(FixedHypervisor(conn), ['cam{}'.format(i) for i in range(count)], Quiet())
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            presence.refresh()
            times.append((time.perf_counter() - started) * 1000)
        assert all(e['present'] for i in range(count) for e in presence.entries('cam{}'.format(i)))
    finally:
        conn.close()
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=25)
    args = parser.parse_args()
    start_event_loop()
    print('device read (DevicePresence.refresh), test driver in-process, {} runs'.format(args.runs))
    print('| domains | hostdevs | host USB+PCI devices | p50 (ms) | p99 (ms) |')
    print('|---|---|---|---|---|')
    with tempfile.TemporaryDirectory() as folder:
        for count in (1, 8, 64):
            p50, p99 = measure(count, args.runs, folder)
            print('| {} | {} | {} | {:.2f} | {:.2f} |'.format(count, 3 * count, 4 * count, p50, p99))


if __name__ == '__main__':
    main()
