"""camvirt: the command line client of camvirtd."""

import argparse
import concurrent.futures
import glob
import json
import os
import sys
import threading
import time

import Pyro4
import Pyro4.errors

from .config import ConfigError, load_config
from .constants import CommandStatus
from .devicequery import config_devices  # [issue 17]
from .hostdevs import absent_summary, entry_text, waiting_text  # [issue 17]
from .registry import RegistryError, load_registry

CONFIG_DIR = '/etc/camvirtd'
CONFIG_ENV = 'CAMVIRTD_CONFIG_PATH'
# initialize() and shutdown() block for up to their timeout; the proxy waits this much longer.
COMMAND_TIMEOUT_MARGIN = 15
STATUS_TIMEOUT = 10
CONFIG_DEVICES_TIMEOUT = 3  # [issue 17] `camvirt config` asks camvirtd for devices, briefly
EXIT_UNREACHABLE = 101
# [issue 13] `status --all`: configs shown at most (an observatory has a handful), queried this many at once.
MAX_FLEET = 64
FLEET_WORKERS = 16

_COLORS = {'green': '\033[92m', 'yellow': '\033[93m', 'red': '\033[91m', 'cyan': '\033[96m',
           'bold': '\033[1m', 'reset': '\033[0m'}
_VM_STATE_COLORS = {'running': 'green', 'shutting down': 'yellow', 'paused': 'yellow',
                    'shut off': 'red', 'crashed': 'red', 'missing': 'red', 'unknown': 'yellow'}
_CAMERA_STATE_COLORS = {'OFFLINE': 'red', 'IDLE': 'green', 'EXPOSING': 'cyan', 'READING': 'cyan'}


class ClientError(Exception):
    """A problem the client reports in one line and exits 1 for."""


def find_config_path(environ=None, config_dir=CONFIG_DIR):
    environ = os.environ if environ is None else environ
    if environ.get(CONFIG_ENV):
        listed = [p for p in environ[CONFIG_ENV].split(':') if p]
        if len(listed) > 1:  # [issue 13]
            raise ClientError('{} lists {} configs: only `camvirt status --all` takes a list; set it to one '
                              'file for this command'.format(CONFIG_ENV, len(listed)))
        if listed:
            return listed[0]
    found = sorted(glob.glob(os.path.join(config_dir, '*.json')))
    if not found:
        raise ClientError('no config found: set {} or install one in {}'.format(CONFIG_ENV, config_dir))
    if len(found) > 1:
        raise ClientError('several configs in {} ({}): set {} to choose one'.format(
            config_dir, ', '.join(os.path.basename(p) for p in found), CONFIG_ENV))
    return found[0]


def load_client_config():
    try:
        return load_config(find_config_path(), load_registry())
    except (ConfigError, RegistryError) as e:
        raise ClientError(str(e)) from None


def paint(text, color, enabled):
    return '{}{}{}'.format(_COLORS[color], text, _COLORS['reset']) if enabled and color else text


def call_daemon(config, method, timeout, *args):
    """The result of a camvirtd method; Pyro4.errors.CommunicationError when unreachable."""
    with Pyro4.Proxy(config.daemon.uri) as proxy:
        proxy._pyroTimeout = timeout  # pylint: disable=protected-access
        return getattr(proxy, method)(*args)


def exit_status(code):
    if code == CommandStatus.CommunicationError:
        return EXIT_UNREACHABLE
    return code if 0 <= code < 256 else 1


def progress_lines(before, after):
    """What changed between two report_status() dicts, as (domain, text) pairs for progress output."""
    old = {d['name']: d for d in before['domains']} if before else {}
    changes = []
    for domain in after['domains']:
        cameras = ', '.join('camera {} {}'.format(c['id'], c['label']) for c in domain['cameras'])
        waiting = waiting_text(domain)  # [issue 17] 'waiting for USB device 03c3:2600'
        text = '; '.join(filter(None, ['VM {}'.format(domain['state']), waiting, cameras]))
        previous = old.get(domain['name'])
        if previous is None or (previous['state'], [c['label'] for c in previous['cameras']],
                                waiting_text(previous)) != \
                (domain['state'], [c['label'] for c in domain['cameras']], waiting):
            changes.append((domain['name'], text))
    return changes


class ProgressWatcher:
    """Prints each domain's progress while a blocking command runs, from report_status() polled on
    a connection of its own."""

    INTERVAL = 0.5

    def __init__(self, config, domains, stream=None):
        self._config = config
        self._domains = set(domains) if domains else None
        self._stream = stream or sys.stdout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._start = time.monotonic()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self):
        last = None
        color = self._stream.isatty()
        while not self._stop.wait(self.INTERVAL):
            try:
                status = call_daemon(self._config, 'report_status', STATUS_TIMEOUT)
            except Exception:  # pylint: disable=broad-except
                continue  # progress is a courtesy; the command's own result is what counts
            status['domains'] = [d for d in status['domains'] if self._domains is None or d['name'] in self._domains]
            for name, text in progress_lines(last, status):
                elapsed = '{:5.1f}s'.format(time.monotonic() - self._start)
                print('{} {}: {}'.format(paint(elapsed, 'bold', color), name, text), file=self._stream, flush=True)
            last = status


def run_command(config, method, timeout, domains, *extra):
    args = (domains or None,) + extra if (domains or extra) else ()
    try:
        with ProgressWatcher(config, domains):
            code = call_daemon(config, method, timeout + COMMAND_TIMEOUT_MARGIN, *args)
    except Pyro4.errors.PyroError:  # unreachable, or something else answers there
        code = CommandStatus.CommunicationError
    print(CommandStatus.message(code))
    if code == CommandStatus.Failed:
        print_failure_summary(config)
    return exit_status(code)


def print_failure_summary(config):
    """Which domains or cameras did not make it, as camvirtd recorded them."""
    try:
        last = call_daemon(config, 'report_status', STATUS_TIMEOUT).get('last_command') or {}
    except Pyro4.errors.PyroError:  # unreachable, or something else answers there
        return
    for problem in command_problems(last):
        print('  ' + problem)


def command_problems(last_command):
    """The problems of report_status()'s last command, one per line (a list since camvirtd 1.1;
    a '; '-joined 'message' before)."""
    if not last_command:
        return []
    if 'problems' in last_command:
        return list(last_command['problems'])
    return [p for p in (last_command.get('message') or '').split('; ') if p]


def restart(config, domains):
    code = run_command(config, 'shutdown', config.shutdown_timeout, domains)
    return code if code else run_command(config, 'initialize', config.initialize_timeout, domains)


def format_status_table(status, color):
    """The lines `camvirt status` prints for a report_status() dict."""
    lines = []
    if not status['libvirt_connected']:
        lines.append(paint('libvirt at {} is unreachable'.format(status['libvirt_uri']), 'red', color))
    if status.get('command'):
        lines.append(paint('{} in progress'.format(status['command']), 'yellow', color))
    rows = [('DOMAIN', 'VM STATE', 'SINCE', 'CAMERA', 'CAMERA STATE')]
    for domain in status['domains']:
        for i, camera in enumerate(domain['cameras']):
            first = i == 0
            rows.append((domain['name'] if first else '', domain['state'] if first else '',
                         domain['since'] if first else '', camera['id'], camera['label']))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for n, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        if n == 0:
            cells = [paint(c, 'bold', color) for c in cells]
        else:
            cells[1] = paint(cells[1], _VM_STATE_COLORS.get(row[1]), color)
            cells[4] = paint(cells[4], _CAMERA_STATE_COLORS.get(row[4], 'yellow'), color)
        lines.append('  '.join(cells).rstrip())
    lines += device_status_lines(status, color)  # [issue 17]
    for domain in status['domains']:
        stop = domain.get('unexpected_stop')
        if stop:
            lines.append(paint('domain {} stopped unexpectedly at {} ({})'.format(
                domain['name'], stop['time'], stop['state']), 'red', color))
    last = status.get('last_command')
    if last:
        lines.append('last command: {} {} at {}'.format(
            last['name'], CommandStatus.message(last['status']), last['time']))
        lines += ['  ' + problem for problem in command_problems(last)]
    return lines


def device_status_lines(status, color):
    """[issue 17] A line per passthrough device: 'domain cam1: USB device 03c3:2600 (ZWO) present'."""
    lines = []
    for domain in status['domains']:
        for entry in domain.get('devices') or []:
            absent = entry.get('understood') and not entry.get('present') and not entry.get('optional')
            lines.append(paint('domain {}: {}'.format(domain['name'], entry_text(entry)),
                               'red' if absent else None, color))
    return lines


def show_status(config, as_json):
    try:
        status = call_daemon(config, 'report_status', STATUS_TIMEOUT)
    except Pyro4.errors.PyroError:  # unreachable, or something else answers there
        print(CommandStatus.message(CommandStatus.CommunicationError))
        return EXIT_UNREACHABLE
    if as_json:
        print(json.dumps(status, indent=2))
    else:
        print('\n'.join(format_status_table(status, sys.stdout.isatty())))
    return 0


def config_summary(config):
    return {
        'config': config.path,
        'server_uri': config.daemon.uri,
        'host': config.daemon.host,
        'port': config.daemon.port,
        'libvirt_uri': config.libvirt_uri,
        'control_machines': dict(config.control_machines),
        'initialize_timeout': config.initialize_timeout,
        'shutdown_timeout': config.shutdown_timeout,
        'domains': {name: {c.id: c.address.uri for c in cameras} for name, cameras in config.domains.items()},
        'sources': name_sources(config),
        'registry_warnings': list(config.registry.warnings),
    }


def name_sources(config):
    """Which registry layer (shipped, rockit.common or an operator file) each name the config uses came from."""
    daemons = [config.daemon_name] + [c.daemon_name for c in config.cameras.values()]
    daemons += [config.log_daemon.name] if config.log_daemon else []
    return config.registry.sources_for(daemons, config.control_machines)


def from_where(config, daemon_name):
    return '({} from {})'.format(daemon_name, config.registry.describe_daemon(daemon_name))


def add_config_devices(summary, config):
    """[issue 17] Each domain's passthrough devices: from camvirtd, else libvirt read-only (devicequery)."""
    devices, source = config_devices(config.libvirt_uri, list(config.domains),
                                     lambda: call_daemon(config, 'report_status', CONFIG_DEVICES_TIMEOUT))
    summary['devices'], summary['devices_source'] = devices, source
    return summary


def show_config(config, as_json):
    summary = add_config_devices(config_summary(config), config)
    if as_json:
        print(json.dumps(summary, indent=2))
        return 0
    machines = summary['sources']['machines']
    print('server:           {} {}'.format(summary['server_uri'], from_where(config, config.daemon_name)))
    print('port:             {}/tcp (open this in the firewall)'.format(summary['port']))
    print('libvirt:          {}'.format(summary['libvirt_uri']))
    print('control machines: {}'.format(', '.join('{} ({}, from {})'.format(m, ip, machines[m]) for m, ip in
                                                   summary['control_machines'].items())))
    print('timeouts:         initialize {} s, shutdown {} s'.format(config.initialize_timeout,
                                                                     config.shutdown_timeout))
    if config.log_daemon:
        print('log:              {} {}'.format(config.log_daemon.uri, from_where(config, config.log_daemon.name)))
    for name, cameras in summary['domains'].items():
        for camera in config.domains[name]:
            print('domain {}: camera {} -> {} {}'.format(name, camera.id, cameras[camera.id],
                                                        from_where(config, camera.daemon_name)))
    for warning in config.registry.warnings:
        print('camvirt: warning: {}'.format(warning), file=sys.stderr)
    print_config_devices(summary)
    return 0


def print_config_devices(summary):
    """[issue 17] 'domain cam1: USB device 03c3:2600 (ZWO ASI2600MM Pro) present'."""
    print('devices from:     {}'.format(summary['devices_source']))
    if summary['devices'] is None:
        return
    for name, entries in summary['devices'].items():
        for entry in entries:
            print('domain {}: {}'.format(name, entry_text(entry)))
        if not entries:
            print('domain {}: no passthrough devices'.format(name))


def fleet_config_paths(environ=None, config_dir=CONFIG_DIR):
    environ = os.environ if environ is None else environ
    if environ.get(CONFIG_ENV):
        paths = [p for p in environ[CONFIG_ENV].split(':') if p]
    else:
        paths = sorted(glob.glob(os.path.join(config_dir, '*.json')))
    if len(paths) > MAX_FLEET:  # [issue 13] a thread and a row each: bounded
        raise ClientError('{} configs to show; `status --all` shows at most {}'.format(len(paths), MAX_FLEET))
    return paths


def fleet_rows(path):
    """Status rows (host, domain, VM state, camera, camera state, devices) for one config, or its
    problem."""
    name = os.path.splitext(os.path.basename(path))[0][:64]
    try:
        config = load_config(path, load_registry())
    except (ConfigError, RegistryError) as e:
        return [(name, 'bad config: ' + one_line(e), '', '', '', '')]
    try:
        status = call_daemon(config, 'report_status', STATUS_TIMEOUT)
    except Pyro4.errors.PyroError:  # unreachable, or something else answers there
        return [(name, 'unreachable ({}:{})'.format(config.daemon.host, config.daemon.port), '', '', '', '')]
    if not isinstance(status, dict) or 'domains' not in status:
        return [(name, 'not a camvirtd at {}:{}'.format(config.daemon.host, config.daemon.port), '', '', '',
                 '')]
    rows = []
    for domain in status['domains']:
        state = domain['state'] if status['libvirt_connected'] else 'libvirt unreachable'
        for camera in domain['cameras']:
            rows.append((name, domain['name'], state, camera['id'], camera['label'],
                         absent_summary(domain)))  # [issue 17] devices
    return rows


def guarded_fleet_rows(path):
    """[issue 13] fleet_rows(), or one row with the error: one bad entry never ends the view."""
    try:
        return fleet_rows(path)
    except Exception as e:  # pylint: disable=broad-except
        name = os.path.splitext(os.path.basename(path))[0][:64]
        return [(name, 'cannot show: ' + (one_line(e) or type(e).__name__), '', '', '', '')]


def one_line(error):
    """[issue 13] The first line of an error, cut to a sane length, with how many more there are."""
    lines = str(error).splitlines() or ['']
    more = ' (and {} more problems)'.format(len(lines) - 1) if len(lines) > 1 else ''
    return lines[0][:300] + more


def show_fleet(as_json):
    try:
        paths = fleet_config_paths()
    except ClientError as e:  # [issue 13]
        print('camvirt: {}'.format(e), file=sys.stderr)
        return 1
    if not paths:
        print('camvirt: no configs found', file=sys.stderr)
        return 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(paths), FLEET_WORKERS)) as pool:
        rows = [row for rows in pool.map(guarded_fleet_rows, paths) for row in rows]
    if as_json:
        keys = ('host', 'domain', 'vm_state', 'camera', 'camera_state', 'devices')
        print(json.dumps([dict(zip(keys, row)) for row in rows], indent=2))
        return fleet_exit_status(rows)
    table = [('HOST', 'DOMAIN', 'VM STATE', 'CAMERA', 'CAMERA STATE', 'DEVICES')] + rows
    columns = 6 if any(row[5] for row in rows) else 5  # [issue 17] no passthrough devices: no column
    table = [row[:columns] for row in table]
    widths = [max(len(row[i]) for row in table) for i in range(columns)]
    for row in table:
        print('  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return fleet_exit_status(rows)


def fleet_exit_status(rows):
    """[issue 13] 1 when any host could not be shown: its row carries an error and no camera."""
    return 1 if any(not row[3] for row in rows) else 0


def build_parser():
    parser = argparse.ArgumentParser(prog='camvirt', description='Control the camera VMs through camvirtd.')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')
    commands.required = True
    init = commands.add_parser('init', help='start the VMs and wait until their cameras answer')
    init.add_argument('domains', nargs='*', metavar='DOMAIN', help='only these domains (default: all)')
    kill = commands.add_parser('kill', help='shut the VMs down and wait until they are off')
    kill.add_argument('domains', nargs='*', metavar='DOMAIN', help='only these domains (default: all)')
    kill.add_argument('--force', action='store_true',
                      help='power off (libvirt destroy) what still runs when shutdown_timeout passes')
    restart_parser = commands.add_parser('restart', help='kill, then init')
    restart_parser.add_argument('domains', nargs='*', metavar='DOMAIN', help='only these domains (default: all)')
    status = commands.add_parser('status', help='show each VM and camera')
    status.add_argument('--json', action='store_true', help='print the raw status as JSON')
    status.add_argument('--all', action='store_true',
                        help='every config in /etc/camvirtd (or in CAMVIRTD_CONFIG_PATH, ":"-separated)')
    config = commands.add_parser('config', help='show the resolved config: server, port, domains')
    config.add_argument('--json', action='store_true', help='print as JSON')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == 'status' and args.all:
        return show_fleet(args.json)
    try:
        config = load_client_config()
    except ClientError as e:
        print('camvirt: {}'.format(e), file=sys.stderr)
        return 1
    if args.command == 'init':
        return run_command(config, 'initialize', config.initialize_timeout, args.domains)
    if args.command == 'kill':
        extra = (True,) if args.force else ()
        return run_command(config, 'shutdown', config.shutdown_timeout, args.domains, *extra)
    if args.command == 'restart':
        return restart(config, args.domains)
    if args.command == 'status':
        return show_status(config, args.json)
    return show_config(config, args.json)
