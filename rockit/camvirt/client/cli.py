"""camvirt: the command line client of camvirtd (its parser and main)."""

import argparse
import sys

from rockit.camvirt import __version__
from rockit.camvirt.client.configfind import ClientError, load_client_config
from rockit.camvirt.client.configview import show_config
from rockit.camvirt.client.fleet import show_fleet
from rockit.camvirt.client.runner import restart, run_command, show_status, watch_status
from rockit.camvirt.client.terminal import Output, colour_wanted


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
