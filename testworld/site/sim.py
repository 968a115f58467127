"""The site world's simulated camera VMs: each DAS host's private libvirtd run in the DAS namespace,
and camds that are processes in their VMs' own namespaces (sitecamvm.py), started when a domain boots
and stopped when it powers off. Also NsProcess, how the world runs anything in a namespace.
"""

import os
import signal
import subprocess
import sys
import threading

from ..privatelibvirtd import PrivateLibvirtd
from ..sandbox import SimulatedGuests, define_domains, say
from ..simcamd import ABSENT, HUNG, CameraVMSimulator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCESS_STOP_TIMEOUT = 10


class NsProcess:
    """A process run in a network namespace (`ip netns exec`), its output passed on to ours, one line
    at a time, after `label`."""

    def __init__(self, label, ns, command, env=None, pdeathsig=False):
        self.label = label
        full = ['ip', 'netns', 'exec', ns] + list(command)
        if pdeathsig:  # only from a thread that lives as long as the world: the signal follows the thread
            full = ['setpriv', '--pdeathsig', 'TERM'] + full
        self.popen = subprocess.Popen(full, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self._pass_output, name='output-' + label, daemon=True).start()

    def _pass_output(self):
        for raw in self.popen.stdout:
            say('{}: {}'.format(self.label, raw.decode(errors='replace').rstrip()))

    def stop(self):
        """SIGTERM, then SIGKILL after PROCESS_STOP_TIMEOUT; returns its exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(PROCESS_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait()


class CamdProcess:
    """A simulated camera VM's camd, in the VM's namespace (see sitecamvm.py); what the
    CameraVMSimulator starts when the domain boots and stops when it powers off."""

    def __init__(self, ns, address, camera_id, hangs, delay):
        self.address = address
        command = [sys.executable, '-m', 'testworld.site.camvm', '--host', address.host, '--port',
                   str(address.port), '--object-id', address.object_id, '--camera-id', camera_id,
                   '--delay', str(delay)] + (['--hangs'] if hangs else [])
        self._process = NsProcess(camera_id + ' camd', ns, command)

    def stop(self):
        self._process.stop()


class SiteCameraVMSimulator(CameraVMSimulator):
    """CameraVMSimulator whose camds are processes in their VMs' namespaces."""

    def __init__(self, conn, cameras, boot_delay, log, namespaces, delay):
        self._namespaces = namespaces  # camera id -> namespace
        self._delay = delay
        super().__init__(conn, cameras, boot_delay, log=log)

    def _start_camd(self, name, address, camera_id, behaviour):
        if behaviour == ABSENT:
            return super()._start_camd(name, address, camera_id, behaviour)
        self._log('{}: booted; camd of camera {} starts at {}'.format(name, camera_id, address.uri))
        return CamdProcess(self._namespaces[camera_id], address, camera_id, behaviour == HUNG, self._delay)


class InNamespace:
    """Mixed into a private libvirtd (simulated or QEMU kind): run it in a DAS host's namespace."""

    def __init__(self, folder, ns):
        super().__init__(folder)
        self.ns = ns

    def _spawn_command(self):
        command, env = super()._spawn_command()
        at = command.index('unshare')
        return command[:at] + ['ip', 'netns', 'exec', self.ns] + command[at:], env


class NamespacedLibvirtd(InNamespace, PrivateLibvirtd):
    """The private libvirtd, run in a DAS host's namespace."""


class DasGuests(SimulatedGuests):
    def __init__(self, das, cameras, boot_delay, namespaces, delay, ns):
        super().__init__(cameras, boot_delay, log=lambda line: say('{} guests: {}'.format(das, line)))
        self._namespaces = namespaces
        self._delay = delay
        self._ns = ns

    def libvirtd(self, folder):
        return NamespacedLibvirtd(folder, self._ns)

    def bring_up(self, conn, _folder):
        define_domains(conn, list(self._cameras))
        simulator = SiteCameraVMSimulator(conn, self._cameras, self._boot_delay, self._log, self._namespaces,
                                          self._delay)
        simulator.sync()
        return simulator
