"""Real QEMU camera guests for the site world (camvirt-site --qemu; optional, not in make test).

Each DAS host's libvirtd runs with its QEMU driver (qemuworld.QemuLibvirtd) in the DAS namespace, and
each guest's QEMU process in its camera VM's namespace: the domains name as their emulator a wrapper
that enters the namespace of the VM the `-name guest=...` argument names (and runs QEMU as it is for
libvirt's capability probe). QEMU's user-mode network then forwards the VM's own address on the camera
bridge (198.18.N.x:port) to the camd inside the guest, so camvirtd reaches each camd over the real
veth link, as with simulated VMs (loss rules apply; the delaying relay does not).

libvirtd's mount namespace hides /run, and with it /run/netns: each camera VM's namespace is
bind-mounted onto a file in the DAS host's folder, where the wrapper finds it. remove_mounts() takes
them away again (also for a world that was killed).
"""

import os
import subprocess

from ..qemuworld import CONSOLES, GuestLog, QemuGuests, QemuLibvirtd, guest_xml
from .sim import InNamespace

QEMU = '/usr/bin/qemu-system-x86_64'
NETNS_FOLDER = 'netns'
WRAPPER = 'qemu-in-vm-namespace'

WRAPPER_SCRIPT = '''#!/bin/sh
# Written by camvirt-site: QEMU in the network namespace of the camera VM it runs.
name=
for a in "$@"; do
  case "$a" in guest=*) name=${{a#guest=}}; name=${{name%%,*}} ;; esac
done
if [ -n "$name" ] && [ -e "{netns}/$name" ]; then
  exec nsenter --net="{netns}/$name" {qemu} "$@"
fi
exec {qemu} "$@"
'''


class NamespacedQemuLibvirtd(InNamespace, QemuLibvirtd):
    """The QEMU-capable private libvirtd, run in a DAS host's namespace."""


def netns_folder(folder):
    return os.path.join(folder, NETNS_FOLDER)


def mount_vm_namespaces(folder, namespaces):
    """Bind-mounts each domain's namespace ({domain: namespace name}) onto folder/netns/<domain>."""
    os.makedirs(netns_folder(folder), exist_ok=True)
    for domain, ns in namespaces.items():
        target = os.path.join(netns_folder(folder), domain)
        open(target, 'a').close()
        subprocess.run(['mount', '--bind', os.path.join('/run/netns', ns), target], check=True,
                       capture_output=True, timeout=10)


def remove_mounts(folder):
    """Unmounts and removes folder/netns (nothing when it is not there)."""
    where = netns_folder(folder)
    if not os.path.isdir(where):
        return
    for name in os.listdir(where):
        path = os.path.join(where, name)
        subprocess.run(['umount', path], capture_output=True, timeout=10)
        try:
            os.unlink(path)
        except OSError:
            pass
    try:
        os.rmdir(where)
    except OSError:
        pass


class DasQemuGuests(QemuGuests):
    """A DAS host's camera VMs as QEMU guests, each QEMU in its VM's namespace."""

    def __init__(self, cameras, image, namespaces, ns, log):
        super().__init__(cameras, [], image, log=log)
        self._das_ns = ns
        self._namespaces = namespaces  # domain -> its VM's namespace

    def libvirtd(self, folder):
        mount_vm_namespaces(folder, self._namespaces)
        return NamespacedQemuLibvirtd(folder, self._das_ns)

    def bring_up(self, conn, folder):
        os.makedirs(os.path.join(folder, CONSOLES), exist_ok=True)
        wrapper = os.path.join(folder, WRAPPER)
        with open(wrapper, 'w') as f:
            f.write(WRAPPER_SCRIPT.format(netns=netns_folder(folder), qemu=QEMU))
        os.chmod(wrapper, 0o755)
        for name, cameras in self._cameras.items():
            xml = guest_xml(name, cameras, self._kernel, self._initrd, folder)
            emulator = '<emulator>{}</emulator>'
            conn.defineXML(xml.replace(emulator.format(QEMU), emulator.format(wrapper)))
        return GuestLog(conn, set(self._cameras), self._log)


def remove_files(folder):
    """Everything the QEMU variant leaves in a DAS host's folder."""
    remove_mounts(folder)
    QemuLibvirtd(folder).remove_files()
    for name in (WRAPPER,):
        try:
            os.unlink(os.path.join(folder, name))
        except FileNotFoundError:
            pass
