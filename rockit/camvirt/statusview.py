"""`camvirt status` for people: a report_status() dict as a table in the rockit theme, in local
time with ages, and the judgement of whether anything needs attention (the exit status scripts use)."""

from rich.table import Table

from .shared.constants import CommandStatus, VMState
from .shared.hostdevs import entry_text
from .terminal import escape
from .shared.times import local_with_age

EXIT_ALL_WELL = 0
EXIT_NEEDS_ATTENTION = 1

VM_STATE_STYLES = {VMState.Running: 'green', VMState.ShuttingDown: 'yellow', VMState.Paused: 'yellow',
                   VMState.ShutOff: 'red', VMState.Crashed: 'red', VMState.Missing: 'red',
                   VMState.Unknown: 'yellow', VMState.Suspended: 'yellow'}
CAMERA_STATE_STYLES = {'OFFLINE': 'red', 'IDLE': 'green', 'EXPOSING': 'cyan', 'READING': 'cyan'}
# VM states that are faults whoever asked for what.
BROKEN_VM_STATES = frozenset([VMState.Crashed, VMState.Missing])


def styled(text, style):
    return '[{0}]{1}[/{0}]'.format(style, escape(text)) if style else escape(text)


def command_problems(last_command):
    """The problems of camvirtd's last command: the list 'problems' (newer camvirtd) or the '; '-joined
    string 'message' (older)."""
    if not last_command:
        return []
    problems = last_command.get('problems')
    if isinstance(problems, (list, tuple)):
        return [str(p) for p in problems if p]
    return [p for p in str(last_command.get('message') or '').split('; ') if p]


def _meant_to_run(status):
    """Domains camvirtd expects to run: its own list where it gives one ('should_run'), else those its
    last command initialized."""
    if isinstance(status.get('should_run'), list):
        return set(status['should_run'])
    last = status.get('last_command') or {}
    if last.get('name') != 'initialize':
        return set()
    return set(last.get('domains') or [])


def needs_attention(status):
    """Why `camvirt status` exits 1: a list of one-line reasons, empty when all is as intended.
    While a command runs, the VMs it moves are in passing states: only libvirt and crashes count then."""
    reasons = []
    if not status.get('libvirt_connected', True):
        reasons.append('libvirt at {} is unreachable'.format(status.get('libvirt_uri')))
    busy = bool(status.get('command'))
    meant_to_run = _meant_to_run(status)
    for domain in status.get('domains', []):
        name, state = domain['name'], domain['state']
        stop = domain.get('unexpected_stop')
        if state in BROKEN_VM_STATES:
            reasons.append('domain {} is {}'.format(name, state))
        elif stop and state not in VMState.UP:
            reasons.append('domain {} should run but is {} (stopped unexpectedly)'.format(name, state))
        elif not busy and name in meant_to_run and state not in VMState.UP and \
                state != VMState.Unknown:
            reasons.append('domain {} should run but is {}'.format(name, state))
        if busy or state != VMState.Running:
            continue
        for camera in domain.get('cameras', []):
            if camera.get('label') == 'OFFLINE':
                reasons.append('camera {} is offline while its VM {} runs'.format(camera['id'], name))
    last = status.get('last_command')
    if not busy and last and last.get('status') not in (None, CommandStatus.Succeeded):
        reasons.append('the last command ({}) failed'.format(last.get('name')))
    return reasons


def domain_table(status, now=None):
    table = Table(box=None, pad_edge=False, show_edge=False, header_style='bold')
    for heading in ('DOMAIN', 'VM STATE', 'SINCE', 'CAMERA', 'CAMERA STATE'):
        table.add_column(heading, no_wrap=True)
    for domain in status.get('domains', []):
        cameras = domain.get('cameras') or [{'id': '', 'label': ''}]
        for i, camera in enumerate(cameras):
            first = i == 0
            table.add_row(
                escape(domain['name']) if first else '',
                styled(domain['state'], VM_STATE_STYLES.get(domain['state'])) if first else '',
                escape(local_with_age(domain.get('since'), now)) if first else '',
                escape(camera['id']),
                styled(camera['label'], CAMERA_STATE_STYLES.get(camera['label'], 'yellow')) if camera['label'] else '')
    return table


def device_lines(status):
    """A line per passthrough device: 'domain cam1: USB device 03c3:2600 (ZWO) present'; a required one
    that is absent in red."""
    lines = []
    for domain in status.get('domains', []):
        for entry in domain.get('devices') or []:
            absent = entry.get('understood') and entry.get('present') is False and not entry.get('optional')
            lines.append(styled('domain {}: {}'.format(domain['name'], entry_text(entry)), 'red' if absent else None))
    return lines


def last_command_lines(last, now=None):
    if not last:
        return []
    code = last.get('status')
    outcome = styled(CommandStatus.message(code), 'green' if code == CommandStatus.Succeeded else 'red')
    lines = ['last command: {} {} at {}'.format(escape(last.get('name')), outcome,
                                                escape(local_with_age(last.get('time'), now)))]
    lines += ['  ' + escape(problem) for problem in command_problems(last)]
    return lines


def status_renderables(status, now=None):
    """What `camvirt status` prints: warnings above the table, history and verdict below."""
    out = []
    if not status.get('libvirt_connected', True):
        out.append(styled('libvirt at {} is unreachable'.format(status.get('libvirt_uri')), 'red'))
    if status.get('command'):
        out.append(styled('{} in progress'.format(status['command']), 'yellow'))
    out.append(domain_table(status, now))
    out += device_lines(status)
    for domain in status.get('domains', []):
        stop = domain.get('unexpected_stop')
        if stop:
            out.append(styled('domain {} {} at {} ({})'.format(
                domain['name'], stop.get('reason') or 'stopped unexpectedly', local_with_age(stop.get('time'), now),
                stop.get('state')), 'red'))
    out += last_command_lines(status.get('last_command'), now)
    reasons = needs_attention(status)
    out += [styled('needs attention: ' + reason, 'red') for reason in reasons]
    return out


def status_exit(status):
    return EXIT_NEEDS_ATTENTION if needs_attention(status) else EXIT_ALL_WELL


def summary_lines(status):
    """One plain line per domain, and one for camvirtd's own state: what `status --watch` prints
    when its output is not a terminal, each time one of them changes. Ages are left out so that a
    line changes only when something happened."""
    lines = []
    if not status.get('libvirt_connected', True):
        lines.append('libvirt at {} is unreachable'.format(status.get('libvirt_uri')))
    if status.get('command'):
        lines.append('{} in progress'.format(status['command']))
    for domain in status.get('domains', []):
        cameras = ', '.join('camera {} {}'.format(c['id'], c['label']) for c in domain.get('cameras', []))
        lines.append('{}: VM {}; {}'.format(domain['name'], domain['state'], cameras))
    last = status.get('last_command')
    if last:
        lines.append('last command: {} {}{}'.format(last.get('name'), CommandStatus.message(last.get('status')),
                                                   ''.join('; ' + p for p in command_problems(last))))
    return lines
