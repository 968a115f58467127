"""The path of each command, top to bottom: admission (caller, domains, the lock) -> steps (start,
wait, stop, force) -> outcome (logged, kept as the last command). Also the commands camvirtd gives
itself: restarting a domain that stopped while it should run."""

import contextlib
import datetime
import time

from .admission import CAMVIRTD_ITSELF, Admission, Refusal, describe_caller
from .constants import CommandStatus
from .crashwatch import CrashWatch
from .steps import FORCED_POWER_OFF_TIMEOUT, Steps


def utc_iso(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec='seconds')


class Commands:
    """initialize() and shutdown() as the rockit network calls them, and crash restarts."""

    def __init__(self, config, hypervisor, probe, log, workers):
        self._config = config
        self._hypervisor = hypervisor
        self._log = log
        self._workers = workers
        self.admission = Admission(config)
        self.crashes = CrashWatch(config.restart_crashed_per_hour)
        self._steps = Steps(config, hypervisor, probe, workers)
        self.last_command = None
        hypervisor.add_listener(self._on_domain_change)

    def initialize(self, requested, caller, wait=0):
        """Starts the domains that are off and waits until every camd in them answers."""
        try:
            command = self.admission.admit('initialize', requested, caller, wait)
        except Refusal as refusal:
            return self._refused(refusal)
        with self._running(command) as outcome:
            deadline = time.monotonic() + self._config.initialize_timeout
            outcome.problems += self._steps.start_domains(command.domains, deadline)
            outcome.problems += self._steps.wait_for_cameras(command.domains, deadline)
            if not outcome.problems:
                self.crashes.expect_running(command.domains)
        return outcome.status

    def shutdown(self, requested, force, caller):
        """Asks the domains to shut down and waits until they are off; with `force`, powers off what
        still runs at shutdown_timeout."""
        try:
            command = self.admission.admit('shutdown', requested, caller)
        except Refusal as refusal:
            return self._refused(refusal)
        with self._running(command) as outcome:
            self.crashes.expect_off(command.domains)
            deadline = time.monotonic() + self._config.shutdown_timeout
            outcome.problems += self._steps.stop_domains(command.domains, deadline)
            if force and outcome.problems:
                outcome.warnings, outcome.problems = self._steps.power_off(command.domains)
        return outcome.status

    def _refused(self, refusal):
        self._log.warning(str(refusal))
        return refusal.status

    @contextlib.contextmanager
    def _running(self, command):
        """Yields the command's Outcome; on leaving, sets its status, logs it and frees the lock. An
        unexpected exception in a step becomes a problem: the caller always gets a status."""
        outcome = Outcome()
        self._log.info('{} requested by {}'.format(command.describe(), describe_caller(command.caller)))
        try:
            yield outcome
        except Exception as e:  # pylint: disable=broad-except
            outcome.problems.append('unexpected error: {!r}'.format(e))
        finally:
            outcome.status = CommandStatus.Failed if outcome.problems else CommandStatus.Succeeded
            try:
                self._finish(command, outcome)
            finally:
                self.admission.release(command)

    def _finish(self, command, outcome):
        """Logs how the command ended and keeps it as the last command."""
        for warning in outcome.warnings:
            self._log.warning('{}: {}'.format(command.name, warning))
        for problem in outcome.problems:
            self._log.error('{}: {}'.format(command.name, problem))
        self._log.info('{} {}'.format(command.describe(), 'failed' if outcome.problems else 'succeeded'))
        self.last_command = {'name': command.name, 'domains': command.domains, 'status': outcome.status,
                             'problems': list(outcome.problems), 'time': utc_iso(time.time())}

    # --- crash awareness -------------------------------------------------------------------------

    def _on_domain_change(self, name, _old, new):
        """Called by the hypervisor on every state change (on libvirt's event thread)."""
        if name in self.admission.busy_domains():
            return  # the command itself is changing it
        if not self.crashes.observe(name, new, time.time()):
            return
        self._log.error('domain {} stopped unexpectedly: it is {} while it should run'.format(name, new))
        if self._config.restart_crashed:
            self._workers.submit(self._restart_crashed, name)

    def _restart_crashed(self, name):
        if not self.crashes.take_restart(time.time()):
            self._log.error('not restarting domain {}: {} automatic restarts in the last hour'.format(
                name, self._config.restart_crashed_per_hour))
            return
        self._log.warning('restarting domain {} after its unexpected stop'.format(name))
        if self.initialize([name], CAMVIRTD_ITSELF, wait=self._longest_command()) == CommandStatus.Blocked:
            self._log.error('not restarting domain {}: another command is still running'.format(name))


    def _longest_command(self):
        """Seconds any command may run: a restart waits that long for the one running now to end."""
        config = self._config
        return max(config.initialize_timeout, config.shutdown_timeout + FORCED_POWER_OFF_TIMEOUT) + 1


class Outcome:
    """What a command met while it ran; its status once it ended."""

    def __init__(self):
        self.problems = []
        self.warnings = []
        self.status = None
