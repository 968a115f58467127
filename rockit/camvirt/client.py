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
from rich.table import Table

from . import __version__
from .shared.config import ConfigError, load_config
from .shared.constants import CommandStatus
from .devicequery import config_devices
from .shared.hostdevs import absent_summary, entry_text, waiting_text
from .reach import EXIT_UNREACHABLE, NotCamvirtd, check_status_reply, short_reason, unreachable_lines
from .shared.registry import RegistryError, load_registry
from .statusview import (CAMERA_STATE_STYLES, EXIT_NEEDS_ATTENTION, VM_STATE_STYLES, command_problems,
                         needs_attention, status_exit, status_renderables, styled)
from .terminal import Output, colour_wanted, escape
from .watch import watch_lines, watch_live

CONFIG_DIR = '/etc/camvirtd'
CONFIG_ENV = 'CAMVIRTD_CONFIG_PATH'
# Where `systemctl enable camvirtd@<config>` links the instance.
SYSTEMD_UNIT_DIR = '/etc/systemd/system'
# initialize() and shutdown() block for up to their timeout; the proxy waits this much longer.
COMMAND_TIMEOUT_MARGIN = 15
STATUS_TIMEOUT = 10
CONFIG_DEVICES_TIMEOUT = 3  # `camvirt config` asks camvirtd for devices, briefly
# `status --all`: configs shown at most (an observatory has a handful), queried this many at once.
MAX_FLEET = 64
FLEET_WORKERS = 16


class ClientError(Exception):
    """A problem the client reports in one line and exits 1 for."""


def enabled_instances(unit_dir=SYSTEMD_UNIT_DIR):
    """The configs whose camvirtd@<config>.service is enabled on this host (systemctl enable makes a
    link in a *.wants folder), by name."""
    links = glob.glob(os.path.join(unit_dir, '*.wants', 'camvirtd@*.service'))
    return {os.path.basename(link)[len('camvirtd@'):-len('.service')] for link in links}


def find_config_path(environ=None, config_dir=CONFIG_DIR, unit_dir=SYSTEMD_UNIT_DIR):
    """CAMVIRTD_CONFIG_PATH, else the only config in /etc/camvirtd, else the only one whose service is
    enabled here (a data package installs each generation's configs side by side)."""
    environ = os.environ if environ is None else environ
    if environ.get(CONFIG_ENV):
        listed = [p for p in environ[CONFIG_ENV].split(':') if p]
        if len(listed) > 1:
            raise ClientError('{} lists {} configs: only `camvirt status --all` takes a list; set it to one '
                              'file for this command'.format(CONFIG_ENV, len(listed)))
        if listed:
            return listed[0]
    found = sorted(glob.glob(os.path.join(config_dir, '*.json')))
    if not found:
        raise ClientError('no config found: set {} or install one in {}'.format(CONFIG_ENV, config_dir))
    if len(found) == 1:
        return found[0]
    enabled = enabled_instances(unit_dir)
    chosen = [path for path in found if os.path.splitext(os.path.basename(path))[0] in enabled]
    if len(chosen) == 1:
        return chosen[0]
    raise ClientError('several configs in {} ({}) and {} of them enabled as camvirtd@<config>: set {} to '
                      'choose one'.format(config_dir, ', '.join(os.path.basename(p) for p in found),
                                          len(chosen) or 'none', CONFIG_ENV))


def load_client_config():
    try:
        return load_config(find_config_path(), load_registry())
    except (ConfigError, RegistryError) as e:
        raise ClientError(str(e)) from None


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
        waiting = waiting_text(domain)  # 'waiting for USB device 03c3:2600'
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

    def __init__(self, config, domains, output, phase=None):
        self._config = config
        self._domains = set(domains) if domains else None
        self._output = output
        self._phase = phase
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
        prefix = '{}: '.format(self._phase) if self._phase else ''
        while not self._stop.wait(self.INTERVAL):
            try:
                status = call_daemon(self._config, 'report_status', STATUS_TIMEOUT)
            except Exception:  # pylint: disable=broad-except
                continue  # progress is a courtesy; the command's own result is what counts
            status['domains'] = [d for d in status['domains'] if self._domains is None or d['name'] in self._domains]
            for name, text in progress_lines(last, status):
                elapsed = '{:5.1f}s'.format(time.monotonic() - self._start)
                self._output.print('{}[bold]{}[/bold] {}: {}'.format(
                    escape(prefix), elapsed, escape(name), escape(text)))
            last = status


def command_outcome(code, phase=None):
    """The line for a command's return code; in a restart it names its phase ('kill: ...')."""
    style = 'green' if code == CommandStatus.Succeeded else 'red'
    prefix = '{}: '.format(phase) if phase else ''
    return '{}[{}]{}[/{}]'.format(escape(prefix), style, escape(CommandStatus.message(code)), style)


def run_command(config, method, timeout, domains, *extra, output=None, phase=None):
    output = output or Output()
    args = (domains or None,) + extra if (domains or extra) else ()
    try:
        with ProgressWatcher(config, domains, output, phase):
            code = call_daemon(config, method, timeout + COMMAND_TIMEOUT_MARGIN, *args)
    except Pyro4.errors.PyroError as error:  # unreachable, or something else answers there
        print_unreachable(config, error, timeout + COMMAND_TIMEOUT_MARGIN, phase)
        return EXIT_UNREACHABLE
    output.print(command_outcome(code, phase))
    if code == CommandStatus.Failed:
        print_failure_summary(config, output)
    return exit_status(code)


def print_unreachable(config, error, timeout, phase=None):
    """The address tried, why it failed and what to check, on stderr (exit status 101)."""
    prefix = 'camvirt: {}'.format('{}: '.format(phase) if phase else '')
    lines = unreachable_lines(config, error, timeout)
    print('\n'.join([prefix + lines[0]] + lines[1:]), file=sys.stderr)


def print_failure_summary(config, output):
    """Which domains or cameras did not make it, as camvirtd recorded them."""
    try:
        last = call_daemon(config, 'report_status', STATUS_TIMEOUT).get('last_command') or {}
    except Pyro4.errors.PyroError:  # unreachable, or something else answers there
        return
    for problem in command_problems(last):
        output.print('  ' + escape(problem))


def restart(config, domains, output=None):
    """kill, then init; each line names its phase, and a failed kill stops the restart."""
    output = output or Output()
    code = run_command(config, 'shutdown', config.shutdown_timeout, domains, output=output, phase='kill')
    if code:
        output.print('[red]restart: init not run because kill did not succeed[/red]')
        return code
    return run_command(config, 'initialize', config.initialize_timeout, domains, output=output, phase='init')


def show_status(config, as_json, output=None):
    output = output or Output()
    try:
        status = check_status_reply(call_daemon(config, 'report_status', STATUS_TIMEOUT))
    except (Pyro4.errors.PyroError, NotCamvirtd) as error:  # unreachable, or something else answers there
        print_unreachable(config, error, STATUS_TIMEOUT)
        return EXIT_UNREACHABLE
    if as_json:
        print(json.dumps(status, indent=2))
    else:
        output.print(*status_renderables(status))
    return status_exit(status)


def watch_status(config, as_json, output):
    if output.terminal and not as_json:
        return watch_live(config, output)
    return watch_lines(config, as_json=as_json)


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
    """Each domain's passthrough devices: from camvirtd, else libvirt read-only (devicequery)."""
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
    """'domain cam1: USB device 03c3:2600 (ZWO ASI2600MM Pro) present'."""
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
    if len(paths) > MAX_FLEET:  # a thread and a row each: bounded
        raise ClientError('{} configs to show; `status --all` shows at most {}'.format(len(paths), MAX_FLEET))
    return paths


FLEET_KEYS = ('host', 'domain', 'vm_state', 'camera', 'camera_state', 'devices')


def fleet_host(path):
    """(status rows (host, domain, VM state, camera, camera state, devices), needs attention) for one
    config; a config that cannot be read or a camvirtd that cannot be reached is one row saying so."""
    name = os.path.splitext(os.path.basename(path))[0][:64]
    try:
        config = load_config(path, load_registry())
    except (ConfigError, RegistryError) as e:
        return [(name, 'bad config: ' + first_problem(e), '', '', '', '')], True
    try:
        status = call_daemon(config, 'report_status', STATUS_TIMEOUT)
    except Pyro4.errors.PyroError as error:  # unreachable, or something else answers there
        return [(name, 'unreachable ({})'.format(short_reason(config, error, STATUS_TIMEOUT)), '', '', '', '')], True
    if not isinstance(status, dict) or 'domains' not in status:
        return [(name, 'not a camvirtd at {}:{}'.format(config.daemon.host, config.daemon.port), '', '', '', '')], True
    rows = []
    for domain in status['domains']:
        state = domain['state'] if status['libvirt_connected'] else 'libvirt unreachable'
        for camera in domain['cameras']:
            rows.append((name, domain['name'], state, camera['id'], camera['label'],
                         absent_summary(domain)))  # passthrough devices that are not there
    return rows, bool(needs_attention(status))


def fleet_rows(path):
    return fleet_host(path)[0]


def guarded_fleet_host(path):
    """fleet_host(), or one row with the error: one bad entry never ends the view."""
    try:
        return fleet_host(path)
    except Exception as e:  # pylint: disable=broad-except
        name = os.path.splitext(os.path.basename(path))[0][:64]
        return [(name, 'cannot show: ' + (first_problem(e) or type(e).__name__), '', '', '', '')], True


def first_problem(error):
    """The first line of an error, cut to a sane length, with how many more there are."""
    lines = str(error).splitlines() or ['']
    more = ' (and {} more problems)'.format(len(lines) - 1) if len(lines) > 1 else ''
    return lines[0][:300] + more


def fleet_table(rows):
    table = Table(box=None, pad_edge=False, show_edge=False, header_style='bold')
    headings = ('HOST', 'DOMAIN', 'VM STATE', 'CAMERA', 'CAMERA STATE', 'DEVICES')
    columns = 6 if any(row[5] for row in rows) else 5  # no passthrough device missing anywhere: no column
    for heading in headings[:columns]:
        table.add_column(heading, no_wrap=True)
    for host, domain, vm_state, camera, camera_state, devices in rows:
        problem = not vm_state
        cells = [escape(host), styled(domain, 'red' if problem else None),
                 styled(vm_state, VM_STATE_STYLES.get(vm_state, 'red')) if vm_state else '',
                 escape(camera), styled(camera_state, CAMERA_STATE_STYLES.get(camera_state, 'yellow'))
                 if camera_state else '', styled(devices, 'red') if devices else '']
        table.add_row(*cells[:columns])
    return table


def show_fleet(as_json, output=None):
    output = output or Output()
    try:
        paths = fleet_config_paths()
    except ClientError as e:
        print('camvirt: {}'.format(e), file=sys.stderr)
        return 1
    if not paths:
        print('camvirt: no configs found', file=sys.stderr)
        return 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(paths), FLEET_WORKERS)) as pool:
        hosts = list(pool.map(guarded_fleet_host, paths))
    rows = [row for host_rows, _ in hosts for row in host_rows]
    if as_json:
        print(json.dumps([dict(zip(FLEET_KEYS, row)) for row in rows], indent=2))
    else:
        output.print(fleet_table(rows))
    # 1 when any host needs attention or could not be shown (its row says why).
    return EXIT_NEEDS_ATTENTION if any(attention for _, attention in hosts) else 0


# What each command's exit status means, for --help and for scripts.
EXIT_CODES = {
    'command': ('0 succeeded; 1 failed (or the config cannot be read); 2 another command is running; '
                '3 unknown domain or invalid arguments; 10 not accepted from this IP; '
                '101 camvirtd cannot be reached'),
    'status': ('0 all as intended; 1 something needs attention (a VM that should run is off or broken, '
               'a camera offline while its VM runs, libvirt unreachable, the last command failed; with '
               '--all: any host needing attention or unreachable) or the config cannot be read; '
               '101 camvirtd cannot be reached'),
    'config': '0 shown; 1 the config or registry cannot be read',
}
USAGE_EXIT = '2 usage error'


def epilog(*kinds):
    return 'exit status:\n' + '\n'.join('  ' + EXIT_CODES[kind] for kind in kinds) + '\n  ' + USAGE_EXIT


def add_command(commands, name, help_text, exit_kind, common):
    return commands.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + '.',
                               epilog=epilog(exit_kind), parents=[common],
                               formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser():
    parser = argparse.ArgumentParser(prog='camvirt', description='Control the camera VMs through camvirtd.',
                                     epilog=epilog('command', 'status', 'config'),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--version', action='version', version='camvirt {}'.format(__version__))
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--no-color', action='store_true',
                        help='no colours (also when NO_COLOR is set; never on a pipe or with --json)')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')
    commands.required = True
    init = add_command(commands, 'init', 'start the VMs and wait until their cameras answer', 'command', common)
    init.add_argument('domains', nargs='*', metavar='DOMAIN', help='only these domains (default: all)')
    kill = add_command(commands, 'kill', 'shut the VMs down and wait until they are off', 'command', common)
    kill.add_argument('domains', nargs='*', metavar='DOMAIN', help='only these domains (default: all)')
    kill.add_argument('--force', action='store_true',
                      help='power off (libvirt destroy) what still runs when shutdown_timeout passes')
    restart_parser = add_command(commands, 'restart', 'kill, then init (not run if kill fails)', 'command', common)
    restart_parser.add_argument('domains', nargs='*', metavar='DOMAIN', help='only these domains (default: all)')
    status = add_command(commands, 'status', 'show each VM and camera', 'status', common)
    status.add_argument('--json', action='store_true', help='print the raw status as JSON (times in UTC)')
    status.add_argument('--all', action='store_true',
                        help='every config in /etc/camvirtd (or in CAMVIRTD_CONFIG_PATH, ":"-separated)')
    status.add_argument('--watch', action='store_true',
                        help='follow changes (about once a second) until Ctrl-C; plain lines on change when '
                             'not on a terminal, a JSON document per change with --json')
    config = add_command(commands, 'config', 'show the resolved config: server, port, domains', 'config', common)
    config.add_argument('--json', action='store_true', help='print as JSON')
    return parser


# Exit status after Ctrl-C outside --watch: the shell's own for SIGINT.
EXIT_INTERRUPTED = 130


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == 'status' and args.all and args.watch:
        parser.error('--watch follows one camvirtd: it cannot be used with --all')
    as_json = getattr(args, 'json', False)
    output = Output(sys.stdout, color=colour_wanted(sys.stdout, args.no_color) and not as_json)
    try:
        return run(args, as_json, output)
    except KeyboardInterrupt:
        # The command goes on in camvirtd: only this client stops waiting for it.
        print('\ncamvirt: interrupted; a command already sent carries on in camvirtd (see camvirt status)',
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # pylint: disable=broad-except
        # A reply this camvirt cannot show (another version of camvirtd, or a bug): one line, not a
        # traceback, at 3 a.m.
        print('camvirt: cannot show what camvirtd answered: {}: {}'.format(
            type(error).__name__, str(error)[:300]), file=sys.stderr)
        return 1


def run(args, as_json, output):
    if args.command == 'status' and args.all:
        return show_fleet(as_json, output)
    try:
        config = load_client_config()
    except ClientError as e:
        print('camvirt: {}'.format(e), file=sys.stderr)
        return 1
    if args.command == 'init':
        return run_command(config, 'initialize', config.initialize_timeout, args.domains, output=output)
    if args.command == 'kill':
        extra = (True,) if args.force else ()
        return run_command(config, 'shutdown', config.shutdown_timeout, args.domains, *extra, output=output)
    if args.command == 'restart':
        return restart(config, args.domains, output)
    if args.command == 'status':
        if args.watch:
            return watch_status(config, as_json, output)
        return show_status(config, as_json, output)
    return show_config(config, args.json)
