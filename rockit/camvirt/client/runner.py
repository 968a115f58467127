"""init, kill, restart (with each domain's progress while camvirtd works) and status."""

import datetime
import json
import threading
import time

import Pyro4.errors

from rockit.camvirt.client.daemoncall import (
    COMMAND_TIMEOUT_MARGIN,
    STATUS_TIMEOUT,
    call_daemon,
    exit_status,
    print_unreachable,
)
from rockit.camvirt.client.reach import EXIT_UNREACHABLE, NotCamvirtd, check_status_reply
from rockit.camvirt.client.statusview import command_problems, running_text, status_exit, status_renderables
from rockit.camvirt.client.terminal import Output, escape
from rockit.camvirt.client.watch import watch_lines, watch_live
from rockit.camvirt.shared.constants import CommandStatus, VMState
from rockit.camvirt.shared.hostdevs import waiting_text


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
            except Exception:
                continue  # progress is a courtesy; the command's own result is what counts
            status['domains'] = [d for d in status['domains'] if self._domains is None or d['name'] in self._domains]
            for name, text in progress_lines(last, status):
                elapsed = '{:5.1f}s'.format(time.monotonic() - self._start)
                self._output.print('{}[bold]{}[/bold] {}: {}'.format(
                    escape(prefix), elapsed, escape(name), escape(text)))
            last = status


def command_outcome(code, phase=None, took=None):
    """The line for a command's return code, with its total time; in a restart it names its phase
    ('kill: ...')."""
    style = 'green' if code == CommandStatus.Succeeded else 'red'
    prefix = '{}: '.format(phase) if phase else ''
    total = ' in {:.1f} s'.format(took) if took is not None and code in (CommandStatus.Succeeded,
                                                                          CommandStatus.Failed) else ''
    return '{}[{}]{}[/{}]{}'.format(escape(prefix), style, escape(CommandStatus.message(code)), style, total)


def deadline_line(config, method, timeout, domains, phase=None):
    """What the command acts on and how long camvirtd gives it, before it starts."""
    prefix = '{}: '.format(phase) if phase else ''
    names = domains or list(config.domains)
    until = datetime.datetime.now().astimezone() + datetime.timedelta(seconds=timeout)
    return '{}{} {}: camvirtd gives it at most {:g} s (until {} {})'.format(
        prefix, method, ', '.join(names), timeout, until.strftime('%H:%M:%S'), until.strftime('%Z'))


def run_command(config, method, timeout, domains, *extra, output=None, phase=None):
    output = output or Output()
    args = (domains or None,) + extra if (domains or extra) else ()
    output.print(escape(deadline_line(config, method, timeout, domains, phase)))
    start = time.monotonic()
    try:
        with ProgressWatcher(config, domains, output, phase):
            code = call_daemon(config, method, timeout + COMMAND_TIMEOUT_MARGIN, *args)
    except Pyro4.errors.PyroError as error:  # unreachable, or something else answers there
        print_unreachable(config, error, timeout + COMMAND_TIMEOUT_MARGIN, phase)
        return EXIT_UNREACHABLE
    output.print(command_outcome(code, phase, time.monotonic() - start))
    if code == CommandStatus.Failed:
        print_failure_summary(config, output)
    elif code == CommandStatus.Blocked:
        print_busy(config, output)
    elif code == CommandStatus.Succeeded and method == 'shutdown':
        print_off(config, domains, output)
    return exit_status(code)


def ask_status(config):
    """report_status(), or None when it cannot be had (the command's own line has been printed)."""
    try:
        status = call_daemon(config, 'report_status', STATUS_TIMEOUT)
    except Pyro4.errors.PyroError:  # unreachable, or something else answers there
        return None
    return status if isinstance(status, dict) else None


def print_busy(config, output):
    """Which command runs, whose and until when (the wire's code 2 tells none of it)."""
    status = ask_status(config)
    if status and status.get('command'):
        output.print('  ' + escape(running_text(status)))


def print_off(config, domains, output):
    """The VMs a kill left off."""
    status = ask_status(config)
    if not status:
        return
    off = [d['name'] for d in status.get('domains', []) if (not domains or d['name'] in domains)
           and d.get('state') not in VMState.UP]
    output.print('  off now: {}'.format(escape(', '.join(off) or 'none')))


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
