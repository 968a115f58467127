"""camvirt: the command line client of camvirtd (its parser and main)."""

import argparse
import os
import sys
import textwrap

from rockit.camvirt import __version__
from rockit.camvirt.client.configfind import ClientError, load_client_config
from rockit.camvirt.client.configview import show_config
from rockit.camvirt.client.fleet import show_fleet
from rockit.camvirt.client.history import show_history
from rockit.camvirt.client.runner import restart, run_command, show_status, watch_status
from rockit.camvirt.client.terminal import Output, colour_wanted

# What each exit status means, by command, for --help and for scripts.
EXIT_CODES = {
    'command': ('init, kill, restart', [
        ('0', 'succeeded'),
        ('1', 'failed (camvirt status and camvirt history say why), or the config cannot be read'),
        ('2', 'another command is running (camvirt says which, whose and until when)'),
        ('3', 'unknown domain or invalid arguments'),
        ('10', 'not accepted from this IP (not a control machine of the config)'),
        ('101', 'camvirtd cannot be reached')]),
    'status': ('status', [
        ('0', 'all as intended'),
        ('1', 'something needs attention (a VM that should run is off or broken, a camd not answering while '
              'its VM runs, libvirt unreachable, the last command failed; with --all: any host needing attention '
              'or unreachable), or the config cannot be read'),
        ('101', 'camvirtd cannot be reached')]),
    'history': ('history', [
        ('0', 'shown, and the newest command succeeded'),
        ('1', 'the newest command failed, or the config cannot be read'),
        ('101', 'camvirtd cannot be reached')]),
    'config': ('config', [
        ('0', 'shown'),
        ('1', 'the config or registry cannot be read (every problem of both is listed)')]),
}
ANY_EXIT = ('any', [('2', 'usage error'), ('130', 'interrupted (Ctrl-C); a command already sent carries on')])
ENVIRONMENT = [
    ('CAMVIRTD_CONFIG_PATH', 'the config to use (status --all: a ":"-separated list of them)'),
    ('CAMVIRTD_REGISTRY', 'registry files (":"-separated) used instead of /etc/camvirtd/registry.d'),
    ('NO_COLOR', 'no colours when set to anything (as --no-color)'),
]
FILES = [
    ('/etc/camvirtd/*.json', 'the configs; camvirt takes the only one, else the only one whose unit is enabled'),
    ('/etc/camvirtd/registry.d/*.json', "the operator's registry layer: machines and daemons rockit.common lacks"),
    ('/etc/systemd/system/*.wants/camvirtd@<config>.service', 'which configs are enabled on this host'),
]


HELP_WIDTH = 79  # the epilog fits an 80-column terminal


def _labelled(rows, indent):
    """'label  text' rows with the text wrapped under itself; labels too long for a column get their
    text on the lines under them."""
    width = max(len(label) for label, _ in rows)
    if width > 24:
        return [line for label, text in rows for line in [indent + label] + textwrap.wrap(
            text, HELP_WIDTH, initial_indent=indent + '    ', subsequent_indent=indent + '    ')]
    hang = indent + ' ' * (width + 2)
    return [line for label, text in rows for line in textwrap.wrap(
        text, HELP_WIDTH, initial_indent='{}{:<{}}  '.format(indent, label, width), subsequent_indent=hang)]


def epilog(*kinds):
    lines = ['EXIT STATUS']
    for title, rows in [EXIT_CODES[kind] for kind in kinds] + [ANY_EXIT]:
        lines += ['  {}:'.format(title)] + _labelled(rows, '    ')
    lines += ['', 'ENVIRONMENT'] + _labelled(ENVIRONMENT, '  ')
    lines += ['', 'FILES'] + _labelled(FILES, '  ')
    return '\n'.join(lines)


def add_command(commands, name, help_text, exit_kind, common):
    return commands.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + '.',
                               epilog=epilog(exit_kind), parents=[common],
                               formatter_class=argparse.RawDescriptionHelpFormatter)


NO_COLOR_HELP = 'no colours (also when NO_COLOR is set; never on a pipe or with --json)'


def build_parser():
    parser = argparse.ArgumentParser(prog='camvirt', description='Control the camera VMs through camvirtd.',
                                     epilog=epilog('command', 'status', 'history', 'config'),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--version', action='version', version='camvirt {}'.format(__version__))
    # Global flags work before the command and after it: the command's copy leaves the value alone
    # unless given there (SUPPRESS), so that `camvirt --no-color status` keeps it.
    parser.add_argument('--no-color', action='store_true', help=NO_COLOR_HELP)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--no-color', action='store_true', default=argparse.SUPPRESS, help=NO_COLOR_HELP)
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
                        help='every config whose camvirtd@ unit is enabled here (or those in '
                             'CAMVIRTD_CONFIG_PATH, ":"-separated)')
    status.add_argument('--installed', action='store_true',
                        help='with --all: every config installed in /etc/camvirtd, enabled or not')
    status.add_argument('--watch', action='store_true',
                        help='follow changes (about once a second) until Ctrl-C; plain lines on change when '
                             'not on a terminal, a JSON document per change with --json')
    history = add_command(commands, 'history', "show the commands camvirtd remembers: who, when, how long, "
                                               "result and problems", 'history', common)
    history.add_argument('--json', action='store_true', help='print as JSON (times in UTC)')
    config = add_command(commands, 'config', 'show the resolved config: server, port, domains', 'config', common)
    config.add_argument('--json', action='store_true', help='print as JSON')
    return parser


EXIT_UNKNOWN_DOMAIN = 3
# Exit status after Ctrl-C outside --watch: the shell's own for SIGINT.
EXIT_INTERRUPTED = 130


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == 'status' and args.all and args.watch:
        parser.error('--watch follows one camvirtd: it cannot be used with --all')
    if args.command == 'status' and args.installed and not args.all:
        parser.error('--installed goes with --all')
    as_json = getattr(args, 'json', False)
    output = Output(sys.stdout, color=colour_wanted(sys.stdout, args.no_color) and not as_json)
    try:
        return run(args, as_json, output)
    except BrokenPipeError:  # the reader (head, grep -m) has gone: that ends the output, quietly
        # Python flushes stdout once more at exit: point it somewhere that cannot break.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        # The command goes on in camvirtd: only this client stops waiting for it.
        print('\ncamvirt: interrupted; a command already sent carries on in camvirtd (see camvirt status)',
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        # A reply this camvirt cannot show (another version of camvirtd, or a bug): one line, not a
        # traceback, at 3 a.m.
        print('camvirt: cannot show what camvirtd answered: {}: {}'.format(
            type(error).__name__, str(error)[:300]), file=sys.stderr)
        return 1


def run(args, as_json, output):
    if args.command == 'status' and args.all:
        return show_fleet(as_json, output, installed=args.installed)
    try:
        config = load_client_config()
    except ClientError as e:
        print('camvirt: {}'.format(e), file=sys.stderr)
        return 1
    if args.command in ('init', 'kill', 'restart'):
        unknown = [name for name in args.domains if name not in config.domains]
        if unknown:  # said here, with the names camvirtd would take, before anything is sent
            print('camvirt: unknown domain {} (not in {}; its domains: {})'.format(
                ', '.join(repr(name) for name in unknown), config.path, ', '.join(config.domains)),
                file=sys.stderr)
            return EXIT_UNKNOWN_DOMAIN
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
    if args.command == 'history':
        return show_history(config, as_json, output)
    return show_config(config, args.json)
