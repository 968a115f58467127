"""Real camera guests for the sandbox: a private libvirtd with the QEMU driver and one small Linux
guest (guestimage.py) per configured domain, whose camd is reachable at the registry's address.

libvirtd runs in a mount namespace of its own in which
- /run, /etc/libvirt and /var/{lib,cache,log}/libvirt are folders under the sandbox's own folder
  (bind mounts, not tmpfs: a libvirtd started again after a crash must find the running guests' state);
- /dev has no kvm: KVM hangs on these hosts, and a visible but broken /dev/kvm makes libvirt re-probe
  QEMU on every call. Guests run under TCG.
A virtlogd (QEMU's log sink) runs beside it and dies with it.
"""

import os
import shutil
import sys
import uuid
import xml.sax.saxutils

import libvirt

from .privatelibvirtd import PrivateLibvirtd, sandbox_uri

GUEST_MEMORY_MIB = 192
# The guest serves its cameras' camds on these ports, one after another; QEMU forwards each camera's
# registry address on the host to one of them.
FIRST_GUEST_PORT = 9000
# Where each guest's serial console is written (DOMAIN.console), under the sandbox's folder.
CONSOLES = os.path.join('state', 'consoles')
# libvirtd with its QEMU driver probes QEMU's capabilities when it starts (a fresh cache each sandbox).
QEMU_LIBVIRTD_START_TIMEOUT = 60.0
STATE_FOLDERS = {'run': '/run', 'etc-libvirt': '/etc/libvirt', 'var-lib-libvirt': '/var/lib/libvirt',
                 'var-cache-libvirt': '/var/cache/libvirt', 'var-log-libvirt': '/var/log/libvirt'}

# Run by `unshare` in the new mount namespace ($1: the sandbox folder), then replaced by libvirtd.
QEMU_NAMESPACE_SCRIPT = r'''set -e
folder=$1; shift
for pair in {pairs}; do
  mkdir -p "$folder/state/${{pair%%:*}}"
  if [ -d "${{pair#*:}}" ]; then mount --bind "$folder/state/${{pair%%:*}}" "${{pair#*:}}"; fi
done
mkdir -p "$folder/dev"
mount -t tmpfs -o mode=0755 camvirt-dev "$folder/dev"
for entry in /dev/*; do
  name=${{entry##*/}}
  [ "$name" = kvm ] && continue
  if [ -d "$entry" ] && [ ! -L "$entry" ]; then
    mkdir "$folder/dev/$name"; mount --rbind "$entry" "$folder/dev/$name"
  else
    cp -a "$entry" "$folder/dev/"
  fi
done
mount --move "$folder/dev" /dev
setpriv --pdeathsig TERM virtlogd &
exec "$@"
'''.format(pairs=' '.join('{}:{}'.format(k, v) for k, v in STATE_FOLDERS.items()))


class QemuLibvirtd(PrivateLibvirtd):
    """PrivateLibvirtd with its hypervisor drivers loaded and QEMU's state kept in the folder."""

    start_timeout = QEMU_LIBVIRTD_START_TIMEOUT

    def __init__(self, folder):
        super().__init__(folder)
        self.uri = sandbox_uri(folder, qemu=True)

    def _spawn_command(self):
        return (['setpriv', '--pdeathsig', 'TERM', 'unshare', '--mount', '--propagation', 'private',
                 'sh', '-c', QEMU_NAMESPACE_SCRIPT, 'sh', self.folder,
                 'libvirtd', '-f', self._conf, '-p', self.pid_file], dict(os.environ))

    def remove_files(self):
        super().remove_files()
        shutil.rmtree(os.path.join(self.folder, 'state'), ignore_errors=True)
        shutil.rmtree(os.path.join(self.folder, 'dev'), ignore_errors=True)


STOP_DETAILS = {libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: 'powered off',
                libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED: 'destroyed',
                libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED: 'crashed',
                libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED: 'failed (its QEMU process died)'}


class QemuGuests:
    """The sandbox's domains as real QEMU guests: defined on its libvirtd, told apart by their kernel
    arguments (which cameras, how each camd behaves, whether the power button works)."""

    def __init__(self, cameras, ignores_power_button, image, log):
        """cameras: {domain: [(DaemonAddress, camera id, behaviour)]}; ignores_power_button: domain
        names; image: (kernel, initramfs); log(line) prints what the guests do."""
        self._cameras = cameras
        self.domains = list(cameras)
        self._ignores_power_button = set(ignores_power_button)
        self._kernel, self._initrd = image
        self._log = log

    def libvirtd(self, folder):
        return QemuLibvirtd(folder)

    def bring_up(self, conn, folder):
        """Defines every guest (again, after a libvirtd restart: the same XML) and tells of their
        starts and stops from then on. Returns what to close() when libvirtd goes."""
        os.makedirs(os.path.join(folder, CONSOLES), exist_ok=True)
        for name, cameras in self._cameras.items():
            conn.defineXML(guest_xml(name, cameras, self._kernel, self._initrd, folder,
                                     ignores_power_button=name in self._ignores_power_button))
        return GuestLog(conn, set(self._cameras), self._log)

    def power_off_all(self, uri):
        """Pulls the plug on every running guest, so that no QEMU process outlives the sandbox."""
        try:
            conn = libvirt.open(uri)
        except libvirt.libvirtError as e:
            self._log('sandbox: cannot reach libvirtd to power the guests off: {}'.format(
                e.get_error_message()))
            return
        try:
            for domain in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                try:
                    domain.destroy()
                except libvirt.libvirtError as e:
                    self._log('{}: cannot power off: {}'.format(domain.name(), e.get_error_message()))
        finally:
            conn.close()


class GuestLog:
    """Prints a line when a guest starts or stops (the sandbox's view; the guest's own console is in
    state/consoles/DOMAIN.console)."""

    def __init__(self, conn, names, log):
        self._conn, self._names, self._log = conn, names, log
        self._callback_id = conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None)

    def _on_lifecycle(self, _conn, dom, event, detail, _opaque):
        if dom.name() not in self._names:
            return
        if event == libvirt.VIR_DOMAIN_EVENT_STARTED:
            self._log('{}: guest started'.format(dom.name()))
        elif event in (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_CRASHED):
            self._log('{}: guest {}'.format(dom.name(), STOP_DETAILS.get(detail, 'stopped')))

    def close(self):
        try:
            self._conn.domainEventDeregisterAny(self._callback_id)
        except libvirt.libvirtError:
            pass


def path_problems(folder):
    """Why the guests cannot be given these paths on their kernel command line (split at whitespace)."""
    return ['{}: the {} must have no whitespace in its path for --qemu (the guest gets it as a kernel '
            'argument)'.format(path, what)
            for what, path in (('sandbox folder', folder), ('repository', repository()), ('venv', venv_python()))
            if any(c.isspace() for c in path)]


def kernel_arguments(cameras, ignores_power_button, folder):
    """The guest /init's arguments (guestimage.INIT_SCRIPT): a cam= per camera, in guest port order,
    with simcamd's behaviour name (answers, hung, absent), which the /init reads as it is.
    cam_sandbox names the sandbox's folder on QEMU's command line: what tells its guests from others."""
    arguments = ['console=ttyS0', 'quiet', 'panic=-1', 'cam_python=' + venv_python(), 'cam_repo=' + repository(),
                 'cam_acpi={}'.format(0 if ignores_power_button else 1), 'cam_sandbox=' + folder]
    for index, (address, camera_id, behaviour) in enumerate(cameras):
        arguments.append('cam={}:{}:{}:{}'.format(FIRST_GUEST_PORT + index, address.object_id, camera_id,
                                                  behaviour))
    return ' '.join(arguments)


def port_forwards(cameras):
    """QEMU user-network option forwarding each camera's registry address to its guest port."""
    return ','.join('hostfwd=tcp:{}:{}-:{}'.format(address.host, address.port, FIRST_GUEST_PORT + index)
                    for index, (address, _, _) in enumerate(cameras))


def guest_xml(name, cameras, kernel, initrd, folder, ignores_power_button=False):
    """Domain XML of a camera guest serving `cameras` ([(DaemonAddress, camera id, behaviour)]) at
    their registry addresses through QEMU's user-mode network. Its UUID follows from the sandbox's
    folder and the name: libvirt takes a second definition of a domain only with the same UUID."""
    e = xml.sax.saxutils.escape
    return '''<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>{memory}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <serial type='file'><source path='{console}' append='off'/><target port='0'/></serial>
    <filesystem type='mount' accessmode='passthrough' multidevs='remap'>
      <source dir='/'/><target dir='hostroot'/><readonly/>
    </filesystem>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='user,id=n0,{forwards}'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='virtio-net-pci,netdev=n0,romfile=,bus=pci.0,addr=0x10'/>
  </qemu:commandline>
</domain>
'''.format(name=e(name), uuid=uuid.uuid5(uuid.NAMESPACE_URL, 'camvirt-sandbox:' + folder + ':' + name),
           memory=GUEST_MEMORY_MIB, kernel=e(kernel), initrd=e(initrd),
           cmdline=e(kernel_arguments(cameras, ignores_power_button, folder)),
           console=e(os.path.join(folder, CONSOLES, name + '.console')), forwards=e(port_forwards(cameras)))


def venv_python():
    """The interpreter running us (the repository's .venv): the guest runs it from the host's root.
    Not resolved through symlinks: a venv's python finds its packages through the link's own path."""
    return sys.executable


def repository():
    """The folder holding the rockit and testworld packages we run from, for the guest's PYTHONPATH."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
