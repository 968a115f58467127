"""`camvirt status --watch`: report_status() about once a second, as a live view on a terminal or as
plain lines on change otherwise. One connection kept while it works, made afresh whenever camvirtd
drops it or restarts; Ctrl-C ends it."""

import json
import os
import sys
import time

import Pyro4
import Pyro4.errors
from rich.console import Group
from rich.live import Live

from rockit.camvirt.client.reach import EXIT_UNREACHABLE, NotCamvirtd, check_status_reply, classify
from rockit.camvirt.client.statusview import status_exit, status_renderables, summary_lines
from rockit.camvirt.client.terminal import escape
from rockit.camvirt.shared.times import age_text, now_clock

INTERVAL = 1.0
# Per call: short, so that a host that drops packets shows as unreachable within a few seconds.
CALL_TIMEOUT = 3.0


class StatusPoller:
    """report_status() through one kept proxy; a call that fails on a kept connection is tried once
    more on a fresh one (camvirtd may have closed an idle connection or restarted)."""

    def __init__(self, uri, timeout=CALL_TIMEOUT):
        self._uri = uri
        self._timeout = timeout
        self._proxy = None

    def poll(self):
        """(status dict, None) or (None, the exception that says why not)."""
        for fresh in (self._proxy is None, True):
            if fresh:
                self.close()
                self._proxy = Pyro4.Proxy(self._uri)
                self._proxy._pyroTimeout = self._timeout
            try:
                return check_status_reply(self._proxy.report_status()), None
            except NotCamvirtd as error:
                return None, error
            except Pyro4.errors.PyroError as error:
                self.close()
                if fresh:
                    return None, error
        return None, None  # not reached: the second pass is always fresh

    def close(self):
        if self._proxy is not None:
            self._proxy._pyroRelease()
            self._proxy = None


class WatchState:
    """What the watch has seen: the last status, and since when camvirtd has been unreachable."""

    def __init__(self):
        self.status = None
        self.error = None
        self.unreachable_since = None

    def record(self, status, error):
        if error is None:
            self.status, self.error, self.unreachable_since = status, None, None
        else:
            self.error = error
            if self.unreachable_since is None:
                self.unreachable_since = time.monotonic()

    def exit_status(self):
        if self.error is not None or self.status is None:
            return EXIT_UNREACHABLE
        return status_exit(self.status)


def live_view(config, state):
    address = config.daemon
    parts = ['[bold]camvirtd {}[/bold] at {}:{}  [dim]{} · every {:g} s · Ctrl-C to quit[/dim]'.format(
        escape(address.name), escape(address.host), address.port, now_clock(), INTERVAL)]
    if state.error is not None:
        reason = classify(state.error, CALL_TIMEOUT)[0]
        parts.append('[red]camvirtd unreachable for {}: {}; trying again every {:g} s[/red]'.format(
            age_text(time.monotonic() - state.unreachable_since), escape(reason), INTERVAL))
        if state.status is not None:
            parts.append('[dim]as last seen:[/dim]')
    if state.status is not None:
        parts += status_renderables(state.status)
    return Group(*parts)


def unreachable_line(state):
    return 'camvirtd unreachable: {}'.format(classify(state.error, CALL_TIMEOUT)[0])


def _ticks(interval):
    """Yields about every `interval` seconds, the first at once; never in a burst after a slow call."""
    while True:
        start = time.monotonic()
        yield
        time.sleep(max(0.0, interval - (time.monotonic() - start)))


def watch_live(config, output, interval=INTERVAL):
    state, poller = WatchState(), StatusPoller(config.daemon.uri)
    try:
        with Live(console=output.console, auto_refresh=False, transient=False) as live:
            for _ in _ticks(interval):
                state.record(*poller.poll())
                live.update(live_view(config, state), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
        poller.close()
    return state.exit_status()


def watch_lines(config, stream=None, as_json=False, interval=INTERVAL):
    """Plain output: a line for each domain (or JSON document) that changed, with the local time."""
    stream = stream or sys.stdout
    state, poller = WatchState(), StatusPoller(config.daemon.uri)
    shown = set()
    try:
        for _ in _ticks(interval):
            state.record(*poller.poll())
            if state.error is not None:
                lines = [unreachable_line(state)]
            elif as_json:
                lines = [json.dumps(state.status, sort_keys=True)]
            else:
                lines = summary_lines(state.status)
            # JSON readers get documents only; that camvirtd is unreachable goes to stderr for them.
            out = sys.stderr if as_json and state.error is not None else stream
            for line in lines:
                if line not in shown:
                    out.write(line + '\n' if as_json and out is stream else '{} {}\n'.format(now_clock(), line))
            out.flush()
            shown = set(lines)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # the reader (head, grep -m) has gone: that is the end of the watch
        # Python flushes stdout once more at exit: point it somewhere that cannot break.
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    finally:
        poller.close()
    return state.exit_status()
