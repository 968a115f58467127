"""The camvirtd process: reads its config, serves CamvirtAPI over Pyro4 until SIGTERM or SIGINT,
and tells systemd when it is serving."""

import argparse
import errno
import os
import select
import signal
import socket
import sys
import threading

import Pyro4
import Pyro4.errors

from .. import __version__
from ..shared.config import ConfigError, load_config
from ..shared.registry import Registry, RegistryError, load_registry
from ..virt.eventloop import stop_event_loop
from ..wire import server as wire  # the hardened Pyro server
from .compose import Camvirtd
from .obslog import ObservatoryLog
from .statefile import DaemonMemory, state_folder, state_path

# Exit status for "cannot ever start with this config" (a bad config or registry, an address that is not
# on this host): sysexits' EX_CONFIG, which camvirtd@.service lists in RestartPreventExitStatus= so that
# systemd stops retrying what no retry can mend. Other failures exit 1 and are retried (StartLimitBurst=).
EXIT_BAD_CONFIG = 78


def configure_pyro():
    Pyro4.config.REQUIRE_EXPOSE = True
    Pyro4.config.SERIALIZER = 'serpent'
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
    """The config, or exit status EXIT_BAD_CONFIG with one line per problem on stderr (the config's and
    the registry's together)."""
    try:
        registry = load_registry()
    except RegistryError as e:
        print('\n'.join(e.problems + config_problems_without_registry(config_path)), file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)
    try:
        config = load_config(config_path, registry)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)
    for warning in config.registry.warnings:  # rockit.common entries left out (registry layering)
        print('camvirtd: warning: {}'.format(warning), file=sys.stderr)
    return config


def config_problems_without_registry(config_path):
    """The config's own problems (its schema's) while the registry cannot be read: all come at once."""
    try:
        load_config(config_path, Registry())
    except ConfigError as e:
        return [line for line in e.problems if 'unknown daemon name' not in line and 'unknown machine name' not in line]
    return []


def checked_state_path(args):
    """The state file for this config; exit EXIT_BAD_CONFIG when it would be the config file itself."""
    path = state_path(state_folder(args.state_dir), args.config)
    if os.path.realpath(path) == os.path.realpath(args.config):
        print('camvirtd: {}: the state file would overwrite the config; give another --state-dir'.format(path),
              file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)
    return path


def address_not_here(error):
    """Whether listening failed because the address is not one of this host's (Errno 99): no restart
    mends that."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.EADDRNOTAVAIL:
            return True
        error = error.__cause__ or error.__context__
    return False


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
    log = ObservatoryLog(config.log_name, config.log_daemon)
    # what must outlive this process: read now, before libvirt's first state arrives.
    memory = DaemonMemory(state_file, config.daemon_name, args.config, log)
    try:
        camvirtd = Camvirtd(config, log, memory)
    except (OSError, Pyro4.errors.CommunicationError) as e:
        address, not_here = config.daemon, address_not_here(e)
        print('camvirtd: cannot listen on {}:{}: {}{}'.format(
            address.host, address.port, e, ': that address is not on this host (is this the right config for '
            'this machine? camvirt config shows where the registry puts it)' if not_here else ''), file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG if not_here else 1)
    stop = StopRequest()
    camvirtd.start()
    log.info('camvirtd serving {} for {} (libvirt {}, state in {})'.format(
        camvirtd.uri, args.config, config.libvirt_uri, memory.path))
    notify_systemd('READY=1')
    stop.wait()
    notify_systemd('STOPPING=1')
    log.info('camvirtd stopping')
    camvirtd.stop()
    stop_event_loop()
    log.info('camvirtd stopped')
    log.close()
    return 0
