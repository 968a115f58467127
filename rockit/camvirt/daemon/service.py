"""The camvirtd process: reads its config, serves CamvirtAPI over Pyro4 until SIGTERM or SIGINT,
and tells systemd when it is serving."""

import argparse
import os
import select
import signal
import socket
import sys
import threading

import Pyro4
import Pyro4.errors

from .. import __version__
from ..wire import server as wire  # the hardened Pyro server
from ..shared.addresses import ControlMachines
from .cameras import CameraProbe
from ..shared.config import ConfigError, load_config
from .api import CamvirtAPI
from ..virt.hypervisor import Hypervisor, stop_event_loop
from .obslog import ObservatoryLog
from ..wire.refusals import RefusalLog
from ..shared.registry import RegistryError, load_registry
from .statefile import DaemonMemory, state_folder, state_path

# Pyro4's own thread-pool server (tests that serve in-process): each connection holds a worker
# thread while it is open. camvirtd itself serves with wire.HardenedDaemon.
THREADPOOL_SIZE = 200


def configure_pyro():
    Pyro4.config.REQUIRE_EXPOSE = True
    Pyro4.config.SERIALIZER = 'serpent'
    Pyro4.config.SERVERTYPE = 'thread'
    Pyro4.config.THREADPOOL_SIZE = THREADPOOL_SIZE
    Pyro4.config.DETAILED_TRACEBACK = False
    wire.configure_pyro()  # serpent only, oneway calls on the bounded workers


class StopRequest:
    """Set by SIGINT or SIGTERM, or by set() from any thread; wait() blocks the main thread until then.

    It sleeps in select() on a pipe that Python's C-level signal handler writes to (set_wakeup_fd), so
    a signal the kernel hands to any of our threads wakes it. An Event.wait() in the main thread would
    sleep on: Python runs signal handlers only in the main thread, and only once it wakes."""

    def __init__(self, signums=(signal.SIGINT, signal.SIGTERM)):
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._requested = threading.Event()
        signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for signum in signums:
            signal.signal(signum, lambda *_: self._requested.set())

    def set(self):
        self._requested.set()
        try:
            os.write(self._write, b'\0')
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    def wait(self):
        while not self._requested.is_set():
            select.select([self._read], [], [])
            try:
                os.read(self._read, 4096)
            except BlockingIOError:
                pass


def notify_systemd(message):
    """sd_notify(3) for Type=notify units: a datagram to $NOTIFY_SOCKET, nothing when unset. Ten
    lines here instead of a dependency (systemd-python needs a compiler and libsystemd headers)."""
    path = os.environ.get('NOTIFY_SOCKET')
    if not path:
        return
    if path.startswith('@'):
        path = '\0' + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(path)
        sock.sendall(message.encode())


def load_or_exit(config_path):
    """The config, or exit status 1 with one line per problem on stderr."""
    try:
        config = load_config(config_path, load_registry())
    except (ConfigError, RegistryError) as e:
        print(str(e), file=sys.stderr)
        sys.exit(1)
    for warning in config.registry.warnings:  # rockit.common entries left out (registry layering)
        print('camvirtd: warning: {}'.format(warning), file=sys.stderr)
    return config


def checked_state_path(args):
    """The state file for this config; exit 1 when it would be the config file itself."""
    path = state_path(state_folder(args.state_dir), args.config)
    if os.path.realpath(path) == os.path.realpath(args.config):
        print('camvirtd: {}: the state file would overwrite the config; give another --state-dir'.format(path),
              file=sys.stderr)
        sys.exit(1)
    return path


def build_parser():
    """camvirtd's arguments (also the source of its manual page, camvirtd(8))."""
    parser = argparse.ArgumentParser(prog='camvirtd', description='Camera VM management daemon')
    parser.add_argument('config', help='path to the JSON config, e.g. /etc/camvirtd/sting_das1.json')
    parser.add_argument('--state-dir', metavar='DIR',
                        help='folder of the state file kept across restarts (default: $STATE_DIRECTORY, '
                             'else /var/lib/camvirtd for root, else ~/.local/state/camvirtd)')
    parser.add_argument('--version', action='version', version='camvirtd {}'.format(__version__))
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = load_or_exit(args.config)
    state_file = checked_state_path(args)
    configure_pyro()
    address = config.daemon
    log = ObservatoryLog(config.log_name, config.log_daemon)
    refusals = RefusalLog(log)
    try:
        pyro = wire.HardenedDaemon(address.host, address.port, refusals,
                                   privileged=ControlMachines(config.control_ips).__contains__)
    except (OSError, Pyro4.errors.CommunicationError) as e:
        print('camvirtd: cannot listen on {}:{}: {}'.format(address.host, address.port, e), file=sys.stderr)
        sys.exit(1)

    hypervisor = Hypervisor(config.libvirt_uri, config.domains, log)
    probe = CameraProbe(config.camera_timeout)
    # what must outlive this process: read now, before libvirt's first state arrives.
    memory = DaemonMemory(state_file, config.daemon_name, args.config, log)
    api = CamvirtAPI(config, hypervisor, probe, log, memory, refusals)
    uri = pyro.register(api, objectId=address.object_id)
    hypervisor.start()

    stop = StopRequest()
    server = threading.Thread(target=pyro.requestLoop, name='pyro', daemon=True)
    server.start()
    log.info('camvirtd serving {} for {} (libvirt {}, state in {})'.format(
        uri, args.config, config.libvirt_uri, memory.path))
    notify_systemd('READY=1')
    stop.wait()
    notify_systemd('STOPPING=1')
    log.info('camvirtd stopping')
    # Each part stops the threads it owns: first what takes requests; then libvirt, which ends every
    # wait of a command still running (it fails as "libvirt unreachable" instead of running on to its
    # deadline); then the work pool, now quick to drain; the log last, so that it has every line.
    pyro.shutdown()
    server.join(timeout=5)
    hypervisor.stop()
    api.close()
    stop_event_loop()
    probe.close()
    refusals.flush()  # the last interval's summaries
    log.info('camvirtd stopped')
    log.close()
    return 0
