"""camvirt: the command line client of camvirtd."""

import argparse
import glob
import json
import os
import sys

import Pyro4
import Pyro4.errors

from .config import ConfigError, load_config
from .constants import CommandStatus
from .registry import RegistryError, load_registry

CONFIG_DIR = '/etc/camvirtd'
CONFIG_ENV = 'CAMVIRTD_CONFIG_PATH'
# initialize() and shutdown() block for up to their timeout; the proxy waits this much longer.
COMMAND_TIMEOUT_MARGIN = 15
STATUS_TIMEOUT = 10
EXIT_UNREACHABLE = 101

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
        return environ[CONFIG_ENV]
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


def run_command(config, method, timeout, domains):
    args = (domains,) if domains else ()
    try:
        code = call_daemon(config, method, timeout + COMMAND_TIMEOUT_MARGIN, *args)
    except Pyro4.errors.CommunicationError:
        code = CommandStatus.CommunicationError
    print(CommandStatus.message(code))
    return exit_status(code)


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
    last = status.get('last_command')
    if last:
        lines.append('last command: {} {} at {}{}'.format(
            last['name'], CommandStatus.message(last['status']), last['time'],
            ' ({})'.format(last['message']) if last['message'] else ''))
    return lines


def show_status(config, as_json):
    try:
        status = call_daemon(config, 'report_status', STATUS_TIMEOUT)
    except Pyro4.errors.CommunicationError:
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
    }


def show_config(config, as_json):
    summary = config_summary(config)
    if as_json:
        print(json.dumps(summary, indent=2))
        return 0
    print('server:           {}'.format(summary['server_uri']))
    print('port:             {}/tcp (open this in the firewall)'.format(summary['port']))
    print('libvirt:          {}'.format(summary['libvirt_uri']))
    print('control machines: {}'.format(', '.join('{} ({})'.format(m, ip) for m, ip in
                                                   summary['control_machines'].items())))
    print('timeouts:         initialize {} s, shutdown {} s'.format(config.initialize_timeout,
                                                                     config.shutdown_timeout))
    for name, cameras in summary['domains'].items():
        for camera_id, uri in cameras.items():
            print('domain {}: camera {} -> {}'.format(name, camera_id, uri))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog='camvirt', description='Control the camera VMs through camvirtd.')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')
    commands.required = True
    init = commands.add_parser('init', help='start the VMs and wait until their cameras answer')
    init.add_argument('domains', nargs='*', metavar='DOMAIN', help='only these domains (default: all)')
    kill = commands.add_parser('kill', help='shut the VMs down and wait until they are off')
    kill.add_argument('domains', nargs='*', metavar='DOMAIN', help='only these domains (default: all)')
    status = commands.add_parser('status', help='show each VM and camera')
    status.add_argument('--json', action='store_true', help='print the raw status as JSON')
    config = commands.add_parser('config', help='show the resolved config: server, port, domains')
    config.add_argument('--json', action='store_true', help='print as JSON')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        config = load_client_config()
    except ClientError as e:
        print('camvirt: {}'.format(e), file=sys.stderr)
        return 1
    if args.command == 'init':
        return run_command(config, 'initialize', config.initialize_timeout, args.domains)
    if args.command == 'kill':
        return run_command(config, 'shutdown', config.shutdown_timeout, args.domains)
    if args.command == 'status':
        return show_status(config, args.json)
    return show_config(config, args.json)
