"""`camvirt status` for people: a report_status() dict as a table in the rockit theme, in local
time with ages, and the judgement of whether anything needs attention (the exit status scripts use)."""

import datetime

from rich.table import Table

from rockit.camvirt.client.terminal import escape
from rockit.camvirt.shared.constants import CommandStatus, VMState
from rockit.camvirt.shared.hostdevs import entry_text
from rockit.camvirt.shared.times import local_with_age

EXIT_ALL_WELL = 0
EXIT_NEEDS_ATTENTION = 1

# Colour says what needs attention, not which state a thing is in: red needs attention, green is
# healthy, cyan is a camera at work, yellow is passing (a command moves it), and dim is off on purpose
# (a VM nobody asked to run, the camera of a VM that is off): normal in the daytime.
ATTENTION, HEALTHY, PASSING, OFF = 'red', 'green', 'yellow', 'dim'
VM_STATE_STYLES = {VMState.Running: HEALTHY, VMState.ShuttingDown: PASSING, VMState.Paused: PASSING,
                   VMState.ShutOff: OFF, VMState.Crashed: ATTENTION, VMState.Missing: ATTENTION,
                   VMState.Unknown: PASSING, VMState.Suspended: PASSING}
CAMERA_STATE_STYLES = {'OFFLINE': OFF, 'IDLE': HEALTHY, 'EXPOSING': 'cyan', 'READING': 'cyan'}
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


def domains_meant_to_run(status):
    """Domains camvirtd expects to run: its own list where it gives one ('should_run'), else those its
    last command initialized."""
    if isinstance(status.get('should_run'), list):
        return set(status['should_run'])
    last = status.get('last_command') or {}
    if last.get('name') != 'initialize':
        return set()
    return set(last.get('domains') or [])


def libvirt_unreachable_text(status):
    """'libvirt at qemu:///system is unreachable: <libvirt's own words>'."""
    why = status.get('libvirt_error')
    return 'libvirt at {} is unreachable{}'.format(status.get('libvirt_uri'), ': {}'.format(why) if why else '')


def domain_problem(domain, busy, meant_to_run):
    """The one-line reason a domain's VM needs attention, or None."""
    name, state = domain['name'], domain['state']
    stop = domain.get('unexpected_stop')
    detail = ': {}'.format(domain['stop_detail']) if domain.get('stop_detail') else ''
    if state in BROKEN_VM_STATES:
        return 'domain {} is {}{}'.format(name, state, detail)
    if stop and state not in VMState.UP:
        how = ': {}'.format(stop['detail']) if stop.get('detail') else ''
        return 'domain {} should run but is {} ({}{})'.format(name, state, stop.get('reason') or 'stopped unexpectedly',
                                                             how)
    if not busy and name in meant_to_run and state not in VMState.UP and state != VMState.Unknown:
        return 'domain {} should run but is {}{}'.format(name, state, detail)
    return None


def camera_problem(domain, camera, busy):
    """A camd that does not answer while its VM runs (a camera not yet initialised answers: it is no
    problem). Rows from a camvirtd before the 'camd' key: a camera offline while its VM runs."""
    if busy or domain['state'] != VMState.Running:
        return None
    if camera.get('camd') == 'not answering':
        return 'camera {}: {} while its VM {} runs'.format(
            camera['id'], camera.get('camd_problem') or camera.get('reason') or 'camd does not answer', domain['name'])
    if 'camd' not in camera and camera.get('label') == 'OFFLINE':
        why = ' (its camd: {})'.format(camera['reason']) if camera.get('reason') else ''
        return 'camera {} is offline while its VM {} runs{}'.format(camera['id'], domain['name'], why)
    return None


def needs_attention(status):
    """Why `camvirt status` exits 1: a list of one-line reasons, empty when all is as intended.
    While a command runs, the VMs it moves are in passing states: only libvirt and crashes count then."""
    reasons = []
    if not status.get('libvirt_connected', True):
        reasons.append(libvirt_unreachable_text(status))
    busy = bool(status.get('command'))
    meant_to_run = domains_meant_to_run(status)
    for domain in status.get('domains', []):
        reasons += filter(None, [domain_problem(domain, busy, meant_to_run)])
        reasons += filter(None, [camera_problem(domain, c, busy) for c in domain.get('cameras', [])])
    last = status.get('last_command')
    if not busy and last and last.get('status') not in (None, CommandStatus.Succeeded):
        reasons.append('the last command ({}) failed'.format(last.get('name')))
    return reasons


def vm_style(domain, busy, meant_to_run):
    if domain_problem(domain, busy, meant_to_run):
        return ATTENTION
    return VM_STATE_STYLES.get(domain['state'], PASSING)


def camera_style(domain, camera, busy):
    if camera_problem(domain, camera, busy):
        return ATTENTION
    return CAMERA_STATE_STYLES.get(camera['label'], PASSING)


def since_text(domain, now=None):
    """'23:12:44 (2 h 14 min ago)' when the state began then; 'seen 23:12:44 (...)' when camvirtd knows
    only since when it has seen it (it started later than the state did)."""
    text = local_with_age(domain.get('since'), now)
    return 'seen ' + text if domain.get('since_seen') and text else text


def zone_name(now=None):
    """This machine's time zone as the table's times are in it ('CET', 'UTC')."""
    return (now or datetime.datetime.now(datetime.timezone.utc)).astimezone().strftime('%Z') or 'local'


def domain_table(status, now=None):
    table = Table(box=None, pad_edge=False, show_edge=False, header_style='bold')
    for heading in ('DOMAIN', 'VM STATE', 'SINCE ({})'.format(zone_name(now)), 'CAMERA', 'CAMERA STATE'):
        table.add_column(heading, no_wrap=True)
    busy = bool(status.get('command'))
    meant_to_run = domains_meant_to_run(status)
    for domain in status.get('domains', []):
        cameras = domain.get('cameras') or [{'id': '', 'label': ''}]
        for i, camera in enumerate(cameras):
            first = i == 0
            table.add_row(
                escape(domain['name']) if first else '',
                styled(domain['state'], vm_style(domain, busy, meant_to_run)) if first else '',
                escape(since_text(domain, now)) if first else '',
                escape(camera['id']),
                styled(camera['label'], camera_style(domain, camera, busy)) if camera['label'] else '')
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
    caller = ' by {}'.format(last['caller']) if last.get('caller') else ''
    lines = ['last command: {} {} at {}{}'.format(escape(last.get('name')), outcome,
                                                  escape(local_with_age(last.get('time'), now)), escape(caller))]
    lines += ['  ' + escape(problem) for problem in command_problems(last)]
    return lines


def running_text(status, now=None):
    """'initialize (cam1, cam2) in progress, by STINGTCS at 10.2.6.160 since 21:00:03 (12 s ago), done
    by 21:01:33 (in 1 min) at the latest'; an older camvirtd tells only the command's name."""
    running = status.get('running_command')
    if not isinstance(running, dict):
        return '{} in progress'.format(status['command'])
    return '{} ({}) in progress, by {} since {}, done by {} at the latest'.format(
        running.get('name'), ', '.join(running.get('domains') or []), running.get('caller') or 'camvirtd itself',
        local_with_age(running.get('started'), now), local_with_age(running.get('until'), now))


def last_failed_lines(status, now=None):
    """Where the last failed command is, when it is not the last command (that one is shown anyway)."""
    failed, last = status.get('last_failed'), status.get('last_command')
    if not isinstance(failed, dict) or failed == last:
        return []
    return ['last failed: {} at {} by {} (camvirt history shows why)'.format(
        escape(failed.get('name')), escape(local_with_age(failed.get('time'), now)),
        escape(failed.get('caller') or 'unknown caller'))]


def status_renderables(status, now=None):
    """What `camvirt status` prints: warnings above the table, history and verdict below."""
    out = []
    if not status.get('libvirt_connected', True):
        out.append(styled(libvirt_unreachable_text(status), 'red'))
    if status.get('command'):
        out.append(styled(running_text(status, now), PASSING))
    out.append(domain_table(status, now))
    out += device_lines(status)
    for domain in status.get('domains', []):
        stop = domain.get('unexpected_stop')
        if stop:
            out.append(styled('domain {} {} at {} ({}{})'.format(
                domain['name'], stop.get('reason') or 'stopped unexpectedly', local_with_age(stop.get('time'), now),
                stop.get('state'), ': {}'.format(stop['detail']) if stop.get('detail') else ''), ATTENTION))
    out += last_command_lines(status.get('last_command'), now)
    out += last_failed_lines(status, now)
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
        lines.append(libvirt_unreachable_text(status))
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
