"""camvirt-sandbox CONFIG: a camera-VM world on one machine, to try camvirtd and to test it end to end.

It runs a private libvirtd (privatelibvirtd.py) and the config's domains on it, in one of two kinds:
- simulated (the default): the domains live on libvirtd's shared test driver and CameraVMSimulator
  plays their guests: a domain's camds come up a boot delay after it starts and go when it stops, at
  the registry's addresses;
- real (--qemu, qemuworld.py): each domain is a small QEMU guest running its cameras' camds inside.
It supervises its libvirtd: when libvirtd dies (the tests kill it), it starts a new one on the same
socket and defines the domains again. The test driver kept them in libvirtd's memory, so they come back
shut off, as a host's domains are after a libvirtd crash; QEMU guests keep running and the new
libvirtd finds them again.
"""

import argparse
import os
import re
import signal
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

import libvirt

from rockit.camvirt.daemon.service import StopRequest, configure_pyro, load_or_exit
from rockit.camvirt.shared.registry import REGISTRY_ENV
from rockit.camvirt.virt.eventloop import start_event_loop

from .guestimage import GuestImageError, build_guest_image
from .privatelibvirtd import SOCKET_NAME, LibvirtdError, PrivateLibvirtd, folder_problems, sandbox_uri, socket_in_use
from .qemuworld import QemuGuests, path_problems
from .simcamd import ABSENT, ANSWERS, HUNG, CameraVMSimulator
from .support import renamed_domain_xml

DEFAULT_BOOT_DELAY = 2.0
# A libvirtd that dies within this long of starting is restarted after a growing delay, not at once.
SHORT_RUN = 1.0
RESTART_MIN_DELAY = 0.5
RESTART_MAX_DELAY = 5.0


class SandboxError(Exception):
    """A problem that stops the sandbox from starting; one line per problem."""


def say(message):
    try:
        print(message, flush=True)
    except OSError:
        pass  # nobody reads our output any more (make run's reader went first): carry on stopping


# The sandbox URI of each kind, with DIR for the sandbox's folder.
TEST_DRIVER_URI = sandbox_uri('DIR')
QEMU_URI = sandbox_uri('DIR', qemu=True)


def folder_from_uri(uri, qemu=False):
    """The folder of a sandbox URI of the kind (TEST_DRIVER_URI or QEMU_URI), or None for another URI."""
    parts = urlsplit(uri)
    sockets = parse_qs(parts.query).get('socket', [])
    scheme, path = ('qemu+unix', '/system') if qemu else ('test+unix', '/default')
    if parts.scheme != scheme or parts.path != path or len(sockets) != 1:
        return None
    if os.path.basename(sockets[0]) != SOCKET_NAME:
        return None
    return os.path.dirname(sockets[0])


def sandbox_folder(config, given, qemu=False):
    """The folder for the sandbox's sockets: --dir, else the one the config's libvirt_uri names."""
    if given:
        return os.path.abspath(given)
    folder = folder_from_uri(config.libvirt_uri, qemu)
    if folder is None:
        raise SandboxError('{}: libvirt_uri {} is not a {}sandbox URI ({}); give --dir'.format(
            config.path, config.libvirt_uri, 'QEMU ' if qemu else '', QEMU_URI if qemu else TEST_DRIVER_URI))
    return folder


def simulated_cameras(config, hung, absent):
    """{domain: [(address, camera id, behaviour)]} for CameraVMSimulator; SandboxError names a
    --hung or --absent camera that the config does not have."""
    unknown = [c for c in hung + absent if c not in config.cameras]
    if unknown:
        raise SandboxError('{}: no camera {} in the config (it has {})'.format(
            config.path, ', '.join(unknown), ', '.join(sorted(config.cameras))))
    behaviour = dict([(c, HUNG) for c in hung] + [(c, ABSENT) for c in absent])
    return {name: [(c.address, c.id, behaviour.get(c.id, ANSWERS)) for c in cameras]
            for name, cameras in config.domains.items()}


def usb_hostdev_xml(ids):
    """A USB passthrough <hostdev> by vendor and product id ('03c3:2600')."""
    vendor, product = ids.split(':')
    return ("<hostdev mode='subsystem' type='usb' managed='no'><source><vendor id='0x{}'/>"
            "<product id='0x{}'/></source></hostdev>".format(vendor, product))


def parse_usb_hostdevs(config, given):
    """{domain: hostdev XML} for --usb-hostdev DOMAIN=VENDOR:PRODUCT options; SandboxError
    for a malformed one or a domain the config does not have."""
    hostdevs = {}
    for option in given:
        match = re.fullmatch(r'([^=]+)=([0-9a-fA-F]{4}:[0-9a-fA-F]{4})', option)
        if not match:
            raise SandboxError('--usb-hostdev {}: expected DOMAIN=VENDOR:PRODUCT (hex ids, as 03c3:2600)'.format(
                option))
        unknown_domains(config, [match.group(1)])
        hostdevs[match.group(1)] = hostdevs.get(match.group(1), '') + usb_hostdev_xml(match.group(2).lower())
    return hostdevs


def define_domains(conn, names, hostdevs=None):
    """Defines each named domain that does not exist yet, copied from the test driver's 'test', with
    the hostdev XML that hostdevs ({domain: XML}) gives it."""
    hostdevs = hostdevs or {}
    template = conn.lookupByName('test').XMLDesc()
    for name in names:
        try:
            conn.lookupByName(name)
            continue
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
        xml = renamed_domain_xml(template, name)
        conn.defineXML(xml.replace('</devices>', hostdevs.get(name, '') + '</devices>', 1))


def unknown_domains(config, names):
    """SandboxError for names that are not domains of the config."""
    unknown = [n for n in names if n not in config.domains]
    if unknown:
        raise SandboxError('{}: no domain {} in the config (it has {})'.format(
            config.path, ', '.join(unknown), ', '.join(sorted(config.domains))))


class SimulatedGuests:
    """The sandbox's domains on libvirtd's test driver, their guests played by CameraVMSimulator."""

    def __init__(self, cameras, boot_delay, log, hostdevs=None):
        self._cameras = cameras
        self.domains = list(cameras)
        self._hostdevs = hostdevs or {}
        self._boot_delay = boot_delay
        self._log = log

    def libvirtd(self, folder):
        return PrivateLibvirtd(folder)

    def bring_up(self, conn, _folder):
        """Defines the domains and plays the guests of those that run. Returns what to close()."""
        define_domains(conn, list(self._cameras), self._hostdevs)
        simulator = CameraVMSimulator(conn, self._cameras, self._boot_delay, log=self._log)
        # The shared test driver forgets its domains when its last client goes: this connection,
        # open until libvirtd stops, keeps them.
        simulator.sync()
        return simulator

    def power_off_all(self, _uri):
        pass  # the test driver's domains end with their libvirtd


class Sandbox:
    """Keeps a private libvirtd, the domains on it and their guests going until stop()."""

    def __init__(self, folder, guests, on_failure):
        self.libvirtd = guests.libvirtd(folder)
        self._guests = guests
        self._on_failure = on_failure
        self._stopping = threading.Event()
        self.error = None
        self._thread = threading.Thread(target=self._supervise, name='sandbox', daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stopping.set()
        self._guests.power_off_all(self.libvirtd.uri)
        self.libvirtd.stop()
        self._thread.join(timeout=30)

    def _supervise(self):
        """Runs on its own thread: libvirtd's parent-death signal is tied to the thread that started it."""
        delay, first = RESTART_MIN_DELAY, True
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                conn, guests = self._bring_up()
            except (LibvirtdError, libvirt.libvirtError) as e:
                if self._stopping.is_set():
                    return  # asked to stop while libvirtd was starting
                if first:
                    self.error = 'camvirt-sandbox: {}'.format(e)
                    self._on_failure()
                    return
                say('sandbox: libvirtd did not start again: {}; next try in {} s'.format(e, delay))
                self._stopping.wait(delay)
                delay = min(delay * 2, RESTART_MAX_DELAY)
                continue
            self._announce(first)
            first = False
            status = self.libvirtd.wait()
            _close_quietly(guests, conn)
            if self._stopping.is_set():
                return
            say('sandbox: libvirtd {}; restarting it'.format(describe_exit(status, self.libvirtd)))
            if time.monotonic() - started < SHORT_RUN:
                self._stopping.wait(delay)
                delay = min(delay * 2, RESTART_MAX_DELAY)
            else:
                delay = RESTART_MIN_DELAY

    def _bring_up(self):
        conn = self.libvirtd.start()
        try:
            return conn, self._guests.bring_up(conn, self.libvirtd.folder)
        except libvirt.libvirtError:
            conn.close()
            self.libvirtd.kill()
            raise

    def _announce(self, first):
        domains = ', '.join(self._guests.domains)
        if first:
            say('sandbox ready: libvirt {} domains {} (libvirtd pid {})'.format(
                self.libvirtd.uri, domains, self.libvirtd.pid))
        else:
            say('sandbox: libvirtd restarted (pid {}); domains {} defined again'.format(
                self.libvirtd.pid, domains))


def describe_exit(status, libvirtd):
    if status < 0:
        return 'was killed by {}'.format(signal.Signals(-status).name)
    return 'exited with status {}: {}'.format(status, libvirtd.last_words())


def _close_quietly(guests, conn):
    guests.close()  # simulated camds stop: their guests went down with libvirtd
    try:
        conn.close()
    except libvirt.libvirtError:
        pass


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='camvirt-sandbox',
        description='Run a private libvirtd with the config\'s domains and their camera VMs, '
                    'simulated or (with --qemu) real.')
    parser.add_argument('config', help='camvirtd config whose domains and cameras to simulate')
    parser.add_argument('--dir', help='folder for libvirtd\'s sockets and pid file (default: the folder of '
                                      'the socket in the config\'s libvirt_uri)')
    parser.add_argument('--qemu', action='store_true',
                        help='real QEMU guests instead of simulated ones (config URI: {})'.format(QEMU_URI))
    parser.add_argument('--boot-delay', type=float, metavar='SECONDS',
                        help='simulated guests: seconds from a domain starting to its camds answering '
                             '(default {})'.format(DEFAULT_BOOT_DELAY))
    parser.add_argument('--ignores-power-button', action='append', default=[], metavar='DOMAIN',
                        help='--qemu: this domain\'s guest ignores the ACPI power button (repeatable)')
    parser.add_argument('--hung', action='append', default=[], metavar='CAMERA_ID',
                        help='this camera\'s camd accepts connections and never answers (repeatable)')
    parser.add_argument('--absent', action='append', default=[], metavar='CAMERA_ID',
                        help='this camera\'s camd never comes up (repeatable)')
    parser.add_argument('--usb-hostdev', action='append', default=[], metavar='DOMAIN=VENDOR:PRODUCT',
                        help='give the domain a USB passthrough device by ids, e.g. cam1=03c3:2600; the '
                             'sandbox has none to pass through, so it is absent (repeatable)')
    args = parser.parse_args(argv)
    if args.qemu and args.boot_delay is not None:
        parser.error('--boot-delay is for simulated guests: real ones take as long as they take')
    if not args.qemu and args.ignores_power_button:
        parser.error('--ignores-power-button needs --qemu: simulated guests always power off at once')
    if args.boot_delay is None:
        args.boot_delay = DEFAULT_BOOT_DELAY
    if args.boot_delay < 0:
        parser.error('--boot-delay must not be negative')
    return args


def prepare(args):
    """(folder, cameras, whether we made the folder) for the sandbox, or exit 1 with the problems.
    Sets args.hostdevs ({domain: hostdev XML}) from --usb-hostdev."""
    config = load_or_exit(args.config)
    try:
        folder = sandbox_folder(config, args.dir, args.qemu)
        cameras = simulated_cameras(config, args.hung, args.absent)
        unknown_domains(config, args.ignores_power_button)
        args.hostdevs = parse_usb_hostdevs(config, args.usb_hostdev)
    except SandboxError as e:
        fail(str(e))
    problems = folder_problems(folder) + (path_problems(folder) if args.qemu else [])
    if problems:
        fail('\n'.join('camvirt-sandbox: ' + p for p in problems))
    if socket_in_use(os.path.join(folder, SOCKET_NAME)):
        fail('camvirt-sandbox: {} is in use: another sandbox runs there (give --dir)'.format(
            os.path.join(folder, SOCKET_NAME)))
    # Not an error (tests and operators may want it), but camvirtd with this config would not find it.
    if folder_from_uri(config.libvirt_uri, args.qemu) not in (folder, None):
        print('camvirt-sandbox: note: camvirtd with {} looks for libvirt at {}, not in {}'.format(
            config.path, config.libvirt_uri, folder), file=sys.stderr)
    made = not os.path.isdir(folder)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        fail('camvirt-sandbox: cannot make {}: {}'.format(folder, e.strerror))
    return folder, cameras, made


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def guests_of_kind(args, cameras):
    """SimulatedGuests, or QemuGuests with the guest image built (once; cached) or exit 1."""
    if not args.qemu:
        return SimulatedGuests(cameras, args.boot_delay, log=say, hostdevs=args.hostdevs)
    try:
        image = build_guest_image()
    except GuestImageError as e:
        fail('camvirt-sandbox: cannot build the guest image: {}'.format(e))
    return QemuGuests(cameras, args.ignores_power_button, image, log=say, hostdevs=args.hostdevs)


# The names config/test.json and config/test-qemu.json use (localhost_*), the test world's own: used
# when CAMVIRTD_REGISTRY does not name registry files already.
LOCAL_REGISTRY = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'registry-local.json')


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault(REGISTRY_ENV, LOCAL_REGISTRY)
    folder, cameras, made_folder = prepare(args)
    guests = guests_of_kind(args, cameras)
    configure_pyro()
    start_event_loop()  # before any connection opens, or its events go nowhere
    stop = StopRequest()
    sandbox = Sandbox(folder, guests, on_failure=stop.set)
    sandbox.start()
    stop.wait()
    sandbox.stop()
    if made_folder:
        try:
            os.rmdir(folder)
        except OSError:
            pass  # someone else put files there: theirs to remove
    if sandbox.error:
        print(sandbox.error, file=sys.stderr)
        return 1
    say('sandbox stopped')
    return 0
