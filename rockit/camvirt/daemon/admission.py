"""Whether a command may run: who asks, for which domains, and whether another command runs. A refusal
is raised as Refusal, carrying the status code the caller gets; an admitted command holds the one
command lock until it ends."""

import threading
import time

from ..shared.addresses import ControlMachines
from ..shared.constants import CommandStatus
from ..shared.errors import CamvirtError
from ..shared.quoting import quote
from ..shared.times import utc_iso
from ..wire.callers import CAMVIRTD_ITSELF, UNKNOWN
from ..wire.callers import describe as describe_caller


class Refusal(CamvirtError):
    """A command that does not run: `status` for the caller; what was refused, to whom and why (a short
    fixed phrase, by which refusals are counted) and any detail, for the log."""

    def __init__(self, status, command, caller, why, detail=''):
        super().__init__('refused {} from {}: {}{}'.format(command, describe_caller(caller), why,
                                                           ': ' + detail if detail else ''))
        self.status = status
        self.command = command
        self.caller = caller
        self.why = why
        self.detail = detail


class Command:
    """One admitted initialize() or shutdown(): what, for which domains, for whom."""

    def __init__(self, name, domains, caller, started=None):
        self.name = name
        self.domains = domains
        self.caller = caller
        self.started = time.time() if started is None else started  # unix time

    def describe(self):
        return '{} ({})'.format(self.name, ', '.join(self.domains))


def select_domains(configured, requested):
    """(domains to act on, in config order; unknown names) for a command's optional domain list."""
    if requested is None:
        return list(configured), []
    if isinstance(requested, str):
        requested = [requested]
    if not isinstance(requested, (list, tuple)):
        return [], [requested]
    unknown = [name for name in requested if not isinstance(name, str) or name not in configured]
    return [name for name in configured if name in requested], unknown


class Admission:
    """Checks caller and domains, and lets one command run at a time (opsd expects code 2 for the
    next while one runs, whichever domains it names)."""

    def __init__(self, config):
        self._config = config
        self._control = ControlMachines(config.control_ips)  # compared as addresses, not strings
        self._lock = threading.Lock()
        self._running = None

    def admit(self, name, requested, caller, wait=0):
        """The Command, now holding the command lock (end it with release()); raises Refusal. With
        `wait`, waits that many seconds for a running command to end instead of refusing at once."""
        if caller is UNKNOWN:
            raise Refusal(CommandStatus.InvalidControlIP, name, caller, 'caller unknown')
        if caller is not CAMVIRTD_ITSELF and caller not in self._control:
            raise Refusal(CommandStatus.InvalidControlIP, name, caller, 'not a control machine')
        domains, unknown = select_domains(self._config.domains, requested)
        if unknown:
            raise Refusal(CommandStatus.UnknownDomain, name, caller, 'unknown domain',
                          quote(unknown[0]) if len(unknown) == 1 else quote(unknown))
        acquired = self._lock.acquire(timeout=wait) if wait > 0 else self._lock.acquire(blocking=False)
        if not acquired:
            running = self._running  # may be None for an instant while the holder starts or ends
            raise Refusal(CommandStatus.Blocked, name, caller,
                          '{} is running'.format(running.name if running else 'another command'),
                          'started {} by {}'.format(utc_iso(running.started), describe_caller(running.caller))
                          if running else '')
        self._running = Command(name, domains, caller)
        return self._running

    def release(self, command):
        assert self._running is command
        self._running = None
        self._lock.release()

    def wait_idle(self, timeout):
        """Waits up to `timeout` seconds for the running command (if any) to end; whether it did."""
        if not self._lock.acquire(timeout=timeout):
            return False
        self._lock.release()
        return True

    @property
    def running(self):
        """The command running now, or None."""
        return self._running

    def busy_domains(self):
        """The domains the running command acts on: their cameras read offline meanwhile."""
        running = self._running
        return frozenset(running.domains) if running else frozenset()
