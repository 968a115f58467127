"""camvirt-site: a whole observatory site on one machine, in network namespaces of its own.

A TCS host, two DAS hosts and a dashboard host on a site network; each DAS host with a private
libvirtd (privatelibvirtd.py, run in the DAS namespace), its simulated camera VMs (each VM's camd a
process in a namespace of its own on the DAS host's camera bridge, up while its domain runs) and
camvirtd, bound to its registry address. The folder gets the site registry, the camvirtd configs and
site.json (what the callers in sitecallers.py read). See docs/testworld.md, "A whole site on one machine".

Everything the world makes is named after a prefix unique to it, written to the folder first: when
the world stops or fails it removes all of it, and a world killed outright is cleaned up by the next
start on the same folder (or by `camvirt-site --clean DIR`).
"""

import argparse
import os
import secrets
import subprocess
import sys
import threading
import time

import libvirt

from rockit.camvirt.daemon.service import StopRequest
from rockit.camvirt.shared.config import ConfigError, load_config
from rockit.camvirt.shared.registry import REGISTRY_ENV, RegistryError, load_registry
from rockit.camvirt.virt.eventloop import start_event_loop

from ..guestimage import GuestImageError, build_guest_image
from ..privatelibvirtd import folder_problems
from ..sandbox import Sandbox, say, simulated_cameras
from ..simcamd import ANSWERS, DEFAULT_INITIALIZE_SECONDS, UNINITIALISED
from . import plan as siteplan
from . import qemu as siteqemu
from .net import NetError, SiteNetwork, remove_namespaces
from .sim import DasGuests, NsProcess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAMVIRTD = os.path.join(REPO, 'camvirtd')
STATE_FILE = '.camvirt-site'
START_TIMEOUT = 60
QEMU_START_TIMEOUT = 150  # libvirtd's QEMU driver probes QEMU first, slowly on a busy machine
DEFAULT_BOOT_DELAY = 2.0


class SiteError(Exception):
    """The world cannot start; one line."""


class SiteStop(StopRequest):
    """StopRequest that also says whether a stop was asked for: the world's start looks, so that a
    Ctrl-C while a slow libvirtd starts ends it at once."""

    def requested(self):
        return self._requested.is_set()


class DasSandbox(Sandbox):
    """A DAS host's libvirtd and camera VMs; `ready` is set once libvirtd first answers."""

    def __init__(self, das, folder, guests, on_failure):
        super().__init__(folder, guests, on_failure)
        self.das = das
        self.ready = threading.Event()

    def _announce(self, first):
        if first:
            say('{}: libvirt {} (libvirtd pid {})'.format(self.das, self.libvirtd.uri, self.libvirtd.pid))
            self.ready.set()
        else:
            say('{}: libvirtd restarted (pid {}); domains defined again'.format(self.das, self.libvirtd.pid))


# --- leftovers ------------------------------------------------------------------------------------------

def read_state(folder):
    """(prefix, pid, whether it made the folder) of the world last started in `folder`, or None."""
    try:
        with open(os.path.join(folder, STATE_FILE)) as f:
            prefix, pid, made = f.read().split()
        return prefix, int(pid), made == 'made'
    except (OSError, ValueError):
        return None


def write_state(folder, prefix, made):
    with open(os.path.join(folder, STATE_FILE), 'w') as f:
        f.write('{} {} {}\n'.format(prefix, os.getpid(), 'made' if made else 'given'))


def world_files(folder):
    names = [siteplan.SITE_FILE, siteplan.REGISTRY_FILE] + [os.path.basename(siteplan.config_path(folder, d))
                                                            for d in siteplan.CAMERA_NETS]
    return [os.path.join(folder, name) for name in names]


def remove_files(folder):
    for path in world_files(folder):
        for candidate in (path, path + '.tmp'):
            try:
                os.unlink(candidate)
            except FileNotFoundError:
                pass
    state_dir = os.path.join(folder, 'state')  # the camvirtds' state files
    for das in siteplan.CAMERA_NETS:
        for leftover in (das + '.json', das + '.json.bad'):
            try:
                os.unlink(os.path.join(state_dir, leftover))
            except FileNotFoundError:
                pass
    try:
        os.rmdir(state_dir)
    except OSError:
        pass
    for das in siteplan.CAMERA_NETS:
        siteqemu.remove_files(siteplan.libvirt_folder(folder, das))  # the simulated kind's files and more
        try:
            os.rmdir(siteplan.libvirt_folder(folder, das))
        except OSError:
            pass


def running_world(folder):
    """The pid of a site world still running in `folder`, or None."""
    state = read_state(folder)
    if state is None or state[1] == os.getpid():
        return None
    try:
        with open('/proc/{}/cmdline'.format(state[1]), 'rb') as f:
            command = f.read().decode(errors='replace')
    except OSError:
        return None
    return state[1] if 'camvirt-site' in command or 'siteworld' in command else None


def clean_leftovers(folder):
    """Removes what a world killed in `folder` left: its namespaces (and the processes in them) and
    its files. Returns (the namespaces removed, whether that world made the folder)."""
    state = read_state(folder)
    removed = remove_namespaces(state[0]) if state else []
    remove_files(folder)
    try:
        os.unlink(os.path.join(folder, STATE_FILE))
    except FileNotFoundError:
        pass
    return removed, bool(state and state[2])


# --- the world ------------------------------------------------------------------------------------------

class SiteWorld:
    """Starts the site in `folder` and removes all of it in stop(), whatever start() got to."""

    def __init__(self, folder, options, on_failure, made_folder=False, stop_requested=lambda: False):
        self.folder = folder
        self._stop_requested = stop_requested
        self.made_folder = made_folder
        self.options = options
        self.prefix = 'cvs' + secrets.token_hex(3)
        self._on_failure = on_failure
        self.network = SiteNetwork(self.prefix, siteplan.SITE_HOSTS, siteplan.CAMERA_NETS)
        self.sandboxes = []
        self.camvirtds = {}
        self._stopping = threading.Event()
        self.error = None

    def start(self):
        """Brings the site up; SiteError or NetError when it cannot."""
        write_state(self.folder, self.prefix, self.made_folder)  # first: the next start finds our traces
        say('camvirt-site: world {} in {}'.format(self.prefix, self.folder))
        self.network.build()
        self._write_files()
        for das in siteplan.CAMERA_NETS:
            self.network_faults(das)
        image = self._guest_image() if self.options.qemu else None
        for das in siteplan.CAMERA_NETS:
            self._start_das(das, image)
        self._wait_for_libvirtds()
        if self.options.camvirtd != 'none':
            for das in siteplan.CAMERA_NETS:
                self._start_camvirtd(das)
            self._wait_for_camvirtds()

    def network_faults(self, das):
        for cam in siteplan.CAMERA_NETS[das][1]:
            self.network.add_loss(cam, self.options.camera_loss)

    def _write_files(self):
        self.site = siteplan.site_description(self.folder, self.prefix, self.options.qemu)
        siteplan.write_json(os.path.join(self.folder, siteplan.REGISTRY_FILE), siteplan.registry_data())
        for das in siteplan.CAMERA_NETS:
            siteplan.write_json(siteplan.config_path(self.folder, das), siteplan.config_data(
                self.folder, das, self.options.camera_timeout, self.options.initialize_timeout, self.options.qemu))
        siteplan.write_json(os.path.join(self.folder, siteplan.SITE_FILE), self.site)
        os.environ[REGISTRY_ENV] = self.site['registry']

    @staticmethod
    def _guest_image():
        try:
            return build_guest_image()
        except GuestImageError as e:
            raise SiteError('cannot build the guest image: {}'.format(e)) from None

    def _start_das(self, das, image=None):
        try:
            config = load_config(siteplan.config_path(self.folder, das), load_registry())
        except (ConfigError, RegistryError) as e:
            raise SiteError(str(e).replace('\n', '; ')) from None
        cameras = simulated_cameras(config, self.options.hung, self.options.absent_in(config))
        if self.options.uninitialised:  # as at dusk: opsd's cam_initialize is still to come
            cameras = {name: [(a, c, UNINITIALISED if b == ANSWERS else b) for a, c, b in entries]
                       for name, entries in cameras.items()}
        namespaces = {cam: self.site['cameras'][cam]['ns'] for cam in siteplan.CAMERA_NETS[das][1]}
        if image is not None:
            guests = siteqemu.DasQemuGuests(cameras, image, namespaces, self.network.ns(das),
                                            log=lambda line: say('{} guests: {}'.format(das, line)))
        else:
            guests = DasGuests(das, cameras, self.options.boot_delay, namespaces, self.options.camera_delay,
                               self.network.ns(das), self.options.camd_initialize_seconds)
        folder = siteplan.libvirt_folder(self.folder, das)
        os.makedirs(folder, exist_ok=True)
        sandbox = DasSandbox(das, folder, guests, on_failure=self._on_failure)
        self.sandboxes.append(sandbox)
        sandbox.start()

    def _wait_for_libvirtds(self):
        timeout = QEMU_START_TIMEOUT if self.options.qemu else START_TIMEOUT
        deadline = time.monotonic() + timeout
        for sandbox in self.sandboxes:
            while not sandbox.ready.wait(0.1):
                self._check_going()
                if time.monotonic() > deadline:
                    raise SiteError('{}: libvirtd did not start within {} s'.format(sandbox.das, timeout))

    def _start_camvirtd(self, das):
        env = dict(os.environ, **{REGISTRY_ENV: self.site['registry']})
        # Each camvirtd's state file in the world's folder, never the host's /var/lib/camvirtd.
        command = [self.options.camvirtd, siteplan.config_path(self.folder, das),
                   '--state-dir', os.path.join(self.folder, 'state')]
        process = NsProcess(das + ' camvirtd', self.network.ns(das), command, env=env, pdeathsig=True)
        self.camvirtds[das] = process
        threading.Thread(target=self._watch, args=(das, process), name='watch-' + das, daemon=True).start()

    def _watch(self, das, process):
        status = process.popen.wait()
        if not self._stopping.is_set():
            self.error = 'camvirtd on {} exited with status {}'.format(das, status)
            self._on_failure()

    def _wait_for_camvirtds(self):
        """Waits until each camvirtd answers from the TCS host with libvirt's view of every domain,
        or one of them or a libvirtd fails."""
        command = ['ip', 'netns', 'exec', self.network.ns('tcs'), sys.executable, '-m', 'testworld.site.callers',
                   '--site', os.path.join(self.folder, siteplan.SITE_FILE), 'ready', '--timeout', str(START_TIMEOUT)]
        waiter = subprocess.Popen(command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        try:
            while waiter.poll() is None and not self.failure() and not self._stop_requested():
                time.sleep(0.1)
        finally:
            if waiter.poll() is None:
                waiter.kill()
            _, err = waiter.communicate()
        self._check_going()
        if waiter.returncode != 0:
            raise SiteError('camvirtd did not get ready: {}'.format(err.strip() or 'no message'))

    def _check_going(self):
        """SiteError once the world failed or was asked to stop while starting."""
        if self.failure():
            raise SiteError(self.failure())
        if self._stop_requested():
            raise SiteError('asked to stop while starting')

    def failure(self):
        """Why the world failed, once it has (a camvirtd exited, a libvirtd could not start), else None."""
        return self.error or next((s.error for s in self.sandboxes if s.error), None)

    def stop(self):
        """Removes everything: processes, libvirtds, namespaces (links and bridges go with them), files."""
        self._stopping.set()
        for process in self.camvirtds.values():
            process.stop()
        for sandbox in self.sandboxes:
            sandbox.stop()
        try:
            remove_namespaces(self.prefix)
        except NetError as e:
            say('camvirt-site: {}'.format(e))
        remove_files(self.folder)
        try:
            os.unlink(os.path.join(self.folder, STATE_FILE))
        except FileNotFoundError:
            pass


def describe(site):
    """The ready line and what to try, host by host."""
    hosts = site['hosts']
    env = 'env CAMVIRTD_REGISTRY={} CAMVIRTD_CONFIG_PATH={}'.format(
        site['registry'], ':'.join(c['config'] for c in site['camvirtd'].values()))
    lines = ['site ready: {} in {} ({})'.format(site['prefix'], site['folder'], ', '.join(
        '{} {}'.format(role, host['address']) for role, host in hosts.items()))]
    lines += ['  {:<9} ip netns exec {} bash'.format(role, host['ns']) for role, host in hosts.items()]
    lines.append('  from TCS: ip netns exec {} {} ./camvirt status --all'.format(hosts['tcs']['ns'], env))
    lines.append('  opsd:     ip netns exec {} .venv/bin/python -m testworld.site.callers --site {}/site.json '
                 'opsd initialize'.format(hosts['tcs']['ns'], site['folder']))
    lines.append('  dashboard: ip netns exec {} .venv/bin/python -m testworld.site.callers --site {}/site.json '
                 'dashboard'.format(hosts['dashboard']['ns'], site['folder']))
    return '\n'.join(lines)


# --- command line ---------------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='camvirt-site',
        description='A test observatory site in network namespaces: TCS, two DAS hosts (libvirtd, simulated '
                    'camera VMs, camvirtd) and a dashboard host, on 198.18.0.0/15. Runs until Ctrl-C or SIGTERM, '
                    'then removes everything it made.')
    parser.add_argument('--dir', required=True, help='folder for the registry, configs, site.json and libvirtd '
                                                     'sockets (made if missing; emptied of our files at the end)')
    parser.add_argument('--clean', action='store_true',
                        help='only remove what a killed world left in --dir, then exit')
    parser.add_argument('--boot-delay', type=float, default=DEFAULT_BOOT_DELAY, metavar='SECONDS',
                        help='seconds from a domain starting to its camd starting (default %(default)s)')
    parser.add_argument('--camera-delay-ms', type=float, default=0, metavar='MS',
                        help='added latency each way between each DAS host and its camera VMs')
    parser.add_argument('--camera-loss-percent', type=int, default=0, metavar='PERCENT',
                        help='packets each camera VM drops at random, each way (nftables)')
    parser.add_argument('--camera-timeout', type=float, default=1.0, metavar='SECONDS',
                        help='camvirtd\'s camera_timeout (default %(default)s)')
    parser.add_argument('--initialize-timeout', type=float, default=60, metavar='SECONDS',
                        help='camvirtd\'s initialize_timeout (default %(default)s)')
    parser.add_argument('--hung', action='append', default=[], metavar='CAMERA_ID',
                        help='this camera\'s camd accepts connections and never answers (repeatable)')
    parser.add_argument('--absent', action='append', default=[], metavar='CAMERA_ID',
                        help='this camera\'s camd never comes up (repeatable)')
    parser.add_argument('--uninitialised', action='store_true',
                        help='camds come up with their camera not initialised ({\'state\': 0}), as at dusk until '
                             'opsd\'s cam_initialize (sitecallers opsd dusk)')
    parser.add_argument('--camd-initialize-seconds', type=float, default=DEFAULT_INITIALIZE_SECONDS,
                        metavar='SECONDS', help='how long a camd\'s initialize() holds its camera lock (a real '
                                                'camera: about a minute; default %(default)s)')
    parser.add_argument('--qemu', action='store_true',
                        help='real QEMU guests (each QEMU in its VM\'s namespace) instead of simulated ones; '
                             'slow, about 200 MB each; not with --camera-delay-ms')
    parser.add_argument('--camvirtd', default=CAMVIRTD, metavar='PATH',
                        help='the camvirtd to run on each DAS host, or "none" to run them yourself '
                             '(default: this clone\'s)')
    args = parser.parse_args(argv)
    if args.boot_delay < 0 or args.camera_delay_ms < 0 or not 0 <= args.camera_loss_percent <= 100:
        parser.error('--boot-delay and --camera-delay-ms must not be negative; --camera-loss-percent is 0..100')
    if args.qemu and args.camera_delay_ms:
        parser.error('--camera-delay-ms needs simulated guests: the delaying relay sits in front of their camds')
    unknown = [c for c in args.hung + args.absent if c not in siteplan.CAMD_PORTS]
    if unknown:
        parser.error('no camera {} in the site (it has {})'.format(', '.join(unknown),
                                                                    ', '.join(siteplan.CAMD_PORTS)))
    args.camera_delay = args.camera_delay_ms / 1000.0
    args.camera_loss = args.camera_loss_percent
    args.absent_in = lambda config: [c for c in args.absent if c in config.cameras]
    args.hung = list(args.hung)
    args.dir = os.path.abspath(args.dir)
    return args


def fail(message):
    print(message, file=sys.stderr)
    return 1


def prepare_folder(folder):
    """Whether we made the folder; SiteError when it cannot hold a world."""
    problems = folder_problems(siteplan.libvirt_folder(folder, 'das1'))
    if problems:
        raise SiteError(problems[0])
    pid = running_world(folder)
    if pid is not None:
        raise SiteError('{}: a site world runs there already (pid {}); stop it or give another --dir'.format(
            folder, pid))
    made = not os.path.isdir(folder)
    os.makedirs(folder, exist_ok=True)
    removed, made_before = clean_leftovers(folder)
    if removed:
        say('camvirt-site: removed what a killed world left in {}: {}'.format(folder, ', '.join(removed)))
    return made or made_before


def main(argv=None):
    args = parse_args(argv)
    if os.geteuid() != 0:
        return fail('camvirt-site: needs root (ip netns)')
    try:
        made = prepare_folder(args.dir)
    except (SiteError, NetError, OSError) as e:
        return fail('camvirt-site: {}'.format(e))
    if args.clean:
        if made:
            os.rmdir(args.dir)
        return 0
    start_event_loop()  # before any libvirt connection opens, or its events go nowhere
    stop = SiteStop()
    world = SiteWorld(args.dir, args, on_failure=stop.set, made_folder=made, stop_requested=stop.requested)
    try:
        status = run_world(world, stop)
    finally:
        world.stop()  # whatever happened: nothing of the world is left
    if made:
        try:
            os.rmdir(args.dir)
        except OSError:
            pass  # someone else put files there: theirs to remove
    if status == 0:
        say('site stopped')
    return status


def run_world(world, stop):
    """Starts the world and waits for a stop request; the exit status."""
    try:
        world.start()
    except (SiteError, NetError, OSError, libvirt.libvirtError) as e:
        return fail('camvirt-site: {}'.format(e))
    say(describe(world.site))
    stop.wait()
    if world.failure():
        return fail('camvirt-site: {}'.format(world.failure()))
    return 0
