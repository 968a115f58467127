"""The steps of a command, each over several domains at once and bounded by a deadline: start the
domains, wait for their cameras, ask them to shut down and wait until they are off, power off what
still runs. Each returns the problems it met, one line each (empty: it worked)."""

import time

from ..shared.constants import VMState
from ..virt.connection import HypervisorUnavailable
from ..virt.devices import DevicesAbsent, start_when_present
from .cameras import wait_until_answering

# How long libvirt may take to power off the domains a forced shutdown destroys.
FORCED_POWER_OFF_TIMEOUT = 10
# A domain whose devices came at the last moment may take this long past the deadline to start.
DEVICE_START_MARGIN = 2


def describe_error(error):
    return str(error) or type(error).__name__


class Steps:
    """The steps, on one hypervisor and camera probe, running their parallel work on `workers`."""

    def __init__(self, config, hypervisor, probe, workers, devices, log):
        self._config = config
        self._hypervisor = hypervisor
        self._probe = probe
        self._workers = workers
        self._devices = devices
        self._log = log

    def _unreachable(self):
        return ['libvirt at {} is unreachable'.format(self._hypervisor.uri)]

    def _why_unknown(self):
        """Why domain states are Unknown now: camvirtd stopping lets libvirt go on purpose."""
        if self._hypervisor.stopping:
            return 'camvirtd stopped'
        return 'libvirt at {} became unreachable'.format(self._hypervisor.uri)

    # --- initialize ------------------------------------------------------------------------------

    def start_domains(self, names, deadline):
        """Starts (or resumes) every domain of `names` that is not running, all at once, each as soon as
        its passthrough devices are on the host. Returns (problems, the domains now started)."""
        if not self._hypervisor.connected:
            return self._unreachable(), []
        states = self._hypervisor.states()
        missing = [name for name in names if states[name].state == VMState.Missing]
        problems = ['domain {} does not exist in libvirt'.format(name) for name in missing]
        # Every domain that exists: start_domain() acts on libvirt's state of the moment (starts,
        # resumes or leaves alone); ours may be an event behind, as for a domain paused just now.
        existing = [name for name in names if name not in missing]
        results = self._workers.run_parallel(lambda name: self._start_when_devices_present(name, deadline),
                                             existing, deadline - time.monotonic() + DEVICE_START_MARGIN)
        started = []
        for name, result in zip(existing, results):
            if isinstance(result, DevicesAbsent):
                problems += result.problems
            elif isinstance(result, TimeoutError):
                problems.append('libvirt did not start domain {} in time'.format(name))
            elif isinstance(result, Exception):
                problems.append('cannot start domain {}: {}'.format(name, describe_error(result)))
            else:
                started.append(name)
        return problems, started

    def _start_when_devices_present(self, name, deadline):
        camera_ids = [camera.id for camera in self._config.domains[name]]
        start_when_present(self._devices, name, camera_ids, deadline, self._hypervisor.start_domain, self._log)

    def wait_for_cameras(self, names, deadline):
        """Waits until every camd in the domains `names` answers. Returns (problems, the domains of
        `names` whose every camd answered)."""
        cameras = [camera for name in names for camera in self._config.domains[name]]
        results = self._workers.run_parallel(lambda camera: self._wait_for_camera(camera, deadline), cameras)
        problems = [r if isinstance(r, str) else 'camera {}: {}'.format(c.id, describe_error(r))
                    for c, r in zip(cameras, results) if r is not None]
        failed = {c.domain for c, r in zip(cameras, results) if r is not None}
        return problems, [name for name in names if name not in failed]

    def _wait_for_camera(self, camera, deadline):
        """None once the camd answers, else why it did not."""
        hypervisor, domain = self._hypervisor, camera.domain
        try:
            state = hypervisor.wait_for_state(domain, {VMState.Running}, deadline)
        except HypervisorUnavailable as e:
            return 'camera {}: {}'.format(camera.id, e)
        if state == VMState.Unknown:
            return 'camera {}: {} while waiting for domain {} to run'.format(camera.id, self._why_unknown(), domain)
        if state != VMState.Running:
            return 'camera {}: domain {} is {}, not running'.format(camera.id, domain, state)
        answer = wait_until_answering(self._probe, camera.address, deadline,
                                      give_up=lambda: hypervisor.state(domain) != VMState.Running)
        if answer.answered:
            return None
        state = hypervisor.state(domain)
        if state == VMState.Unknown:
            return 'camera {}: {} while waiting for camd'.format(camera.id, self._why_unknown())
        if state != VMState.Running:
            return 'camera {}: domain {} became {} while waiting for camd'.format(camera.id, domain, state)
        why = answer.problem
        return 'camera {} ({} at {}:{}) did not answer within {} s{}'.format(
            camera.id, camera.daemon_name, camera.address.host, camera.address.port,
            self._config.initialize_timeout, ' (last try: {})'.format(why) if why else '')

    def not_running(self, names):
        """A problem for each domain of `names` (whose cameras answered) that is no longer running."""
        states = {name: self._hypervisor.state(name) for name in names}
        problems = ['domain {} is {}: it stopped after its cameras answered'.format(name, state)
                    for name, state in states.items() if state not in (VMState.Running, VMState.Unknown)]
        unknown = [name for name, state in states.items() if state == VMState.Unknown]
        if unknown:
            problems.append('{} after the cameras of {} answered: whether they still run is unknown'.format(
                self._why_unknown(), ', '.join(unknown)))
        return problems

    # --- shutdown --------------------------------------------------------------------------------

    def stop_domains(self, names, deadline):
        """Asks each running domain of `names` to shut down, again every shutdown_repeat_interval
        while it has not begun to, and waits until all are off."""
        hypervisor = self._hypervisor
        if not hypervisor.connected:
            return self._unreachable()
        to_stop = [name for name, status in hypervisor.states().items()
                   if name in names and status.state in VMState.UP]
        still_up = {name: hypervisor.state(name) for name in to_stop}
        problems = []
        try:
            while still_up and time.monotonic() < deadline:
                # Only those still running: a domain shutting down already heard us.
                problems = self._request_shutdowns(
                    [name for name, state in still_up.items() if state == VMState.Running], deadline)
                repeat_at = min(deadline, time.monotonic() + self._config.shutdown_repeat_interval)
                still_up = hypervisor.wait_until_down(to_stop, repeat_at)
        except HypervisorUnavailable as e:
            return problems + [str(e)]
        return problems + ['domain {} is still {} after {} s'.format(name, state, self._config.shutdown_timeout)
                           for name, state in still_up.items()]

    def _request_shutdowns(self, names, deadline):
        results = self._workers.run_parallel(self._hypervisor.request_shutdown, names,
                                             deadline - time.monotonic())
        problems = []
        for name, result in zip(names, results):
            if isinstance(result, Exception):
                problems.append('cannot shut down domain {}: {}'.format(name, describe_error(result)))
        return problems

    def power_off(self, names):
        """(warnings, problems): destroys the domains of `names` that are still up, a warning for each,
        and waits until they are off."""
        hypervisor = self._hypervisor
        still_up = {name: status.state for name, status in hypervisor.states().items()
                    if name in names and status.state in VMState.UP}
        warnings = ['forced power-off of domain {}: still {} after {} s'.format(
            name, state, self._config.shutdown_timeout) for name, state in still_up.items()]
        deadline = time.monotonic() + FORCED_POWER_OFF_TIMEOUT
        targets = list(still_up)
        results = self._workers.run_parallel(hypervisor.destroy_domain, targets, FORCED_POWER_OFF_TIMEOUT)
        problems = ['cannot power off domain {}: {}'.format(name, describe_error(result))
                    for name, result in zip(targets, results) if isinstance(result, Exception)]
        try:
            left = hypervisor.wait_until_down(targets, deadline)
        except HypervisorUnavailable as e:
            return warnings, problems + [str(e)]
        return warnings, problems + ['domain {} is still {} after a forced power-off'.format(name, state)
                                     for name, state in left.items()]
