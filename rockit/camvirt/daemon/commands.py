"""The path of each command, top to bottom: admission (caller, domains, the lock) -> steps (start,
wait, stop, force) -> outcome (logged, kept as the last command). Also the commands camvirtd gives
itself: restarting a domain that stopped while it should run."""

import contextlib
import time

from ..shared.addresses import normalised
from ..shared.constants import CommandStatus, VMState
from ..shared.times import utc_iso
from ..wire.callers import CAMVIRTD_ITSELF
from ..wire.callers import describe as describe_caller
from ..wire.refusals import RefusalLog
from .admission import Admission, Refusal
from .crashwatch import CrashWatch, RestartQueue
from .statefile import NoMemory
from .steps import FORCED_POWER_OFF_TIMEOUT, Steps


class Commands:
    """initialize() and shutdown() as the rockit network calls them, and crash restarts."""

    def __init__(self, config, hypervisor, probe, log, workers, devices, memory=None, refusals=None):
        self._config = config
        self._refusals = refusals or RefusalLog(log)
        self._hypervisor = hypervisor
        self._log = log
        self._workers = workers
        self._admission = Admission(config)
        self._devices = devices
        self._steps = Steps(config, hypervisor, probe, workers, devices, log)
        self._memory = memory or NoMemory()  # what must outlive camvirtd (statefile.DaemonMemory)
        self._crashes = CrashWatch(config.restart_crashed_per_hour)
        # Before the first state libvirt reports, so that a domain found off that should run is an
        # unexpected stop.
        self.last_command = remember_crashes(self._memory, self._crashes, config.domains, time.time())
        self._restarts = RestartQueue(self._restart_crashed, config.domains, workers.submit, self._wait_for_libvirt)
        hypervisor.add_listener(self._on_domain_change)

    def initialize(self, requested, caller, wait=0):
        """Starts the domains that are off and waits until every camd in them answers."""
        try:
            command = self._admission.admit('initialize', requested, caller, wait)
        except Refusal as refusal:
            return self._refused(refusal)
        with self._running(command) as outcome:
            deadline = time.monotonic() + self._config.initialize_timeout
            problems, started = self._steps.start_domains(command.domains, deadline)
            outcome.problems += problems
            problems, ready = self._steps.wait_for_cameras(started, deadline)
            outcome.problems += problems
            # A VM may stop after its cameras answered (its events were the command's own until now).
            outcome.problems += self._steps.not_running(ready)
            # What runs at the end is expected to run, whether or not its camd answered: crash watch
            # then notices when it stops (a partly failed initialize must not forget what it started).
            self._crashes.expect_running(self._running_now(command.domains))
        return outcome.status

    def shutdown(self, requested, force, caller):
        """Asks the domains to shut down and waits until they are off; with `force`, powers off what
        still runs at shutdown_timeout."""
        try:
            command = self._admission.admit('shutdown', requested, caller)
        except Refusal as refusal:
            return self._refused(refusal)
        with self._running(command) as outcome:
            self._crashes.expect_off(command.domains)
            deadline = time.monotonic() + self._config.shutdown_timeout
            outcome.problems += self._steps.stop_domains(command.domains, deadline)
            if force and outcome.problems:
                outcome.warnings, outcome.problems = self._steps.power_off(command.domains)
        return outcome.status

    def _running_now(self, names):
        return [name for name in names if self._hypervisor.state(name) == VMState.Running]

    # --- what the queries ask -------------------------------------------------------------------

    def history(self):
        """The commands remembered (the state file's), oldest first."""
        return self._memory.history()

    def busy_domains(self):
        """The domains the running command acts on (none when no command runs)."""
        return self._admission.busy_domains()

    def should_run(self):
        """The domains camvirtd expects to run (after initialize, until shutdown or an unexpected stop)."""
        return self._crashes.expected_running()

    def should_run_since(self, name):
        """Since when `name` should run (unix time), None when it should not."""
        return self._crashes.expected_since(name)

    def unexpected_stop(self, name):
        """`name`'s unexpected stop ({'state', 'time', 'reason', 'detail'}) not yet dealt with, or None."""
        return self._crashes.unexpected_stop(name)

    def wait_idle(self, timeout):
        """Waits up to `timeout` s for the running command, if any, to end."""
        self._admission.wait_idle(timeout)

    def running_detail(self):
        """The command running now: which, for whom, since and until when at the latest; or None."""
        running = self._admission.running
        if running is None:
            return None
        config = self._config
        longest = config.initialize_timeout if running.name == 'initialize' else \
            config.shutdown_timeout + FORCED_POWER_OFF_TIMEOUT
        return {'name': running.name, 'domains': list(running.domains), 'caller': self.caller_text(running.caller),
                'started': utc_iso(running.started), 'until': utc_iso(running.started + longest)}

    def caller_text(self, caller):
        """'STINGTCS at 10.2.6.160': the control machine's name from the registry where it is one."""
        if caller is CAMVIRTD_ITSELF:
            return describe_caller(caller)
        address = normalised(caller)
        for name, ip in self._config.control_machines.items():
            if address is not None and normalised(ip) == address:
                return '{} at {}'.format(name, caller)
        return caller

    def _refused(self, refusal):
        self._refusals.refused(describe_caller(refusal.caller), refusal.command, refusal.why, refusal.detail)
        return refusal.status

    @contextlib.contextmanager
    def _running(self, command):
        """Yields the command's Outcome; on leaving, sets its status, logs it and frees the lock. An
        unexpected exception in a step becomes a problem: the caller always gets a status."""
        outcome = Outcome()
        caller = self.caller_text(command.caller)
        self._memory.command_started(command.name, command.domains, caller, command.started)
        self._log.info('{} requested by {}'.format(command.describe(), caller))
        self._devices.refresh_quietly()  # never act on a stale view of the host's passthrough devices
        try:
            yield outcome
        except Exception as e:
            outcome.problems.append('unexpected error: {!r}'.format(e))
        finally:
            outcome.status = CommandStatus.Failed if outcome.problems else CommandStatus.Succeeded
            try:
                self._finish(command, outcome, caller)
            finally:
                self._admission.release(command)
            self._look_again(command.domains)

    def _finish(self, command, outcome, caller):
        """Logs how the command ended and keeps it as the last command (and in the history)."""
        for warning in outcome.warnings:
            self._log.warning('{}: {}'.format(command.name, warning))
        for problem in outcome.problems:
            self._log.error('{}: {}'.format(command.name, problem))
        ended = time.time()
        self._log.info('{} {} in {:.1f} s'.format(command.describe(), 'failed' if outcome.problems else 'succeeded',
                                                 ended - command.started))
        self.last_command = {'name': command.name, 'domains': command.domains, 'status': outcome.status,
                             'problems': list(outcome.problems), 'time': utc_iso(ended), 'caller': caller,
                             'started': utc_iso(command.started),
                             'duration': round(max(0.0, ended - command.started), 1)}
        self._memory.command_finished(self.last_command)

    # --- crash awareness -------------------------------------------------------------------------

    def _on_domain_change(self, name, _old, new):
        """Called by the hypervisor on every state change (on its dispatch thread)."""
        if name in self._admission.busy_domains():
            return  # the command itself is changing it; _look_again() sees where it left them
        self._observe(name, new)

    def _look_again(self, names):
        """After a command: its domains' changes were not watched while it ran, so one that should run
        and is off now (stopped under the command, or the command failed to bring it back) is seen."""
        for name in names:
            self._observe(name, self._hypervisor.state(name))

    def _observe(self, name, new):
        stop = self._crashes.observe(name, new, time.time(), self._hypervisor.stop_detail(name))
        if stop is None:
            return
        how = ' ({})'.format(stop['detail']) if stop.get('detail') else ''
        self._log.error('domain {} {}{}: it is {} while it should run'.format(name, stop['reason'], how, new))
        if self._config.restart_crashed:
            self._restarts.add(name)

    def _wait_for_libvirt(self):
        """At start, stops are reported while libvirt's states are being read, before commands can use
        the connection: a restart then would fail as "libvirt unreachable" and spend budget, and one
        begun before every stop was reported would leave the others for a second command."""
        self._hypervisor.wait_settled(time.monotonic() + self._config.initialize_timeout)

    def _restart_crashed(self, names):
        """Restarts, in one initialize, the domains of `names` that the hourly budget allows."""
        allowed = []
        for name in names:
            if self._crashes.take_restart(time.time()):
                allowed.append(name)
                self._log.warning('restarting domain {} after its unexpected stop'.format(name))
            else:
                self._log.error('not restarting domain {}: {} automatic restarts in the last hour'.format(
                    name, self._config.restart_crashed_per_hour))
        # A command running now ends within its own timeout: wait for it rather than give up.
        if allowed and self.initialize(allowed, CAMVIRTD_ITSELF, wait=self._longest_command()) == \
                CommandStatus.Blocked:
            self._log.error('not restarting {}: another command is still running'.format(', '.join(allowed)))

    def _longest_command(self):
        """Seconds any command may run: a restart waits that long for the one running now to end."""
        config = self._config
        return max(config.initialize_timeout, config.shutdown_timeout + FORCED_POWER_OFF_TIMEOUT) + 1


def remember_crashes(memory, crashes, domains, now):
    """Wires the crash watch to the state file: takes back what the file remembers into `crashes`,
    and from then on writes the file, with the watch's state, at every change of it. Returns the last
    command to show."""
    remembered = memory.restore(domains, now)
    crashes.restore(remembered.expected, remembered.stops, remembered.restarts, now, remembered.host_restarted)
    crashes.on_change = memory.save
    memory.include(crashes.snapshot)
    return remembered.last_command


class Outcome:
    """What a command met while it ran; its status once it ended."""

    def __init__(self):
        self.problems = []
        self.warnings = []
        self.status = None
