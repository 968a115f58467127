"""`camvirt history`: the commands camvirtd remembers (its state file's), newest last: when each began,
what it did, who asked, how long it took, how it ended and its problems under it."""

import json

import Pyro4.errors

from rockit.camvirt.client.daemoncall import STATUS_TIMEOUT, call_daemon, print_unreachable
from rockit.camvirt.client.reach import EXIT_UNREACHABLE
from rockit.camvirt.client.statusview import ATTENTION, HEALTHY, command_problems, styled, zone_name
from rockit.camvirt.client.terminal import Output, escape
from rockit.camvirt.shared.constants import CommandStatus
from rockit.camvirt.shared.times import local_with_age

# camvirt history exits 1 when the newest command failed (as camvirt status counts it).
EXIT_LAST_FAILED = 1


def entry_lines(entry, now=None):
    """'21:00:03 (9 h ago)  initialize cam1, cam2  by STINGTCS at 10.2.6.160  took 42.1 s  failed' and its
    problems, each on a line of its own under it (so that it fits 80 columns)."""
    code = entry.get('status')
    outcome = styled(CommandStatus.message(code) if code != CommandStatus.Failed else 'failed',
                     HEALTHY if code == CommandStatus.Succeeded else ATTENTION)
    duration = entry.get('duration')
    head = '{}  {} {}'.format(escape(local_with_age(entry.get('started') or entry.get('time'), now)),
                             escape(entry.get('name')), escape(', '.join(entry.get('domains') or [])))
    details = ['by ' + escape(entry.get('caller') or 'unknown caller')]
    if isinstance(duration, (int, float)):
        details.append('took {:.1f} s'.format(duration))
    lines = [head, '    {}: {}'.format(', '.join(details), outcome)]
    lines += ['    ' + escape(problem) for problem in command_problems(entry)]
    return lines


def history_renderables(history, now=None):
    if not history:
        return ['no command remembered yet']
    out = ['[bold]commands, oldest first (times {})[/bold]'.format(zone_name(now))]
    for entry in history:
        out += entry_lines(entry, now)
    return out


def show_history(config, as_json, output=None):
    output = output or Output()
    try:
        history = call_daemon(config, 'report_history', STATUS_TIMEOUT)
    except Pyro4.errors.PyroError as error:
        print_unreachable(config, error, STATUS_TIMEOUT)
        return EXIT_UNREACHABLE
    except AttributeError:  # a camvirtd from before the history: it has no report_history()
        output.print('this camvirtd keeps no history (it is older than this camvirt); see camvirt status')
        return 1
    if not isinstance(history, list):
        raise ValueError('report_history() gave no list')
    if as_json:
        print(json.dumps(history, indent=2))
    else:
        output.print(*history_renderables(history))
    return EXIT_LAST_FAILED if history and history[-1].get('status') != CommandStatus.Succeeded else 0
