"""camvirtd: the Pyro4 service that starts and stops the camera VMs and passes camera status through.

Wire methods, as the rockit operations daemon and dashboard call them:
  initialize(domains=None) -> CommandStatus     shutdown(domains=None) -> CommandStatus
  report_camera_status(camera_id) -> dict       report_status() -> dict (for camvirt status)
"""

import concurrent.futures
import contextlib
import datetime
import threading
import time

import libvirt
import Pyro4

from .addresses import ControlMachines, canonical  # issue 14
from .arguments import command_problem, is_camera_id  # issue 14
from .cameras import wait_until_answering
from .constants import OFFLINE_CAMERA_STATUS, CameraState, CommandStatus, VMState
from .crashwatch import CrashWatch
from .logtext import quote  # issue 14
from .refusals import RefusalLog  # issue 14

# Who a command that camvirtd starts itself (restart_crashed) is logged as coming from.
SELF = 'camvirtd'

# VM states in which a camd may be up: asked directly. Unknown means libvirt is unreachable, and
# then camd itself is the best witness of whether its VM runs.
PROBED_VM_STATES = frozenset([VMState.Running, VMState.ShuttingDown, VMState.Unknown])
# How long libvirt may take to power off the domains a forced shutdown destroys.
FORCED_POWER_OFF_TIMEOUT = 10


def caller_ip():
    """The IP of the Pyro client whose request this thread serves, an IPv4-mapped IPv6 address as its
    IPv4 address (issue 14: as the wire server counts refusals by it)."""
    address = getattr(Pyro4.current_context, 'client_sock_addr', None)
    return canonical(address[0]) if address else None


def utc_iso(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec='seconds')


def select_domains(configured, requested):
    """(domains to act on, unknown names) for a command's optional list of domain names."""
    if requested is None:
        return list(configured), []
    if isinstance(requested, str):
        requested = [requested]
    if not isinstance(requested, (list, tuple)):
        return [], [requested]
    unknown = [name for name in requested if not isinstance(name, str) or name not in configured]
    return [name for name in configured if name in requested], unknown


def domains_to_start(names, states):
    """Every domain of `names` that exists. start_domain() acts on libvirt's state of the moment (starts,
    resumes or leaves alone): ours may be an event behind, as for a domain started and paused just now."""
    return [name for name in names if states[name].state != VMState.Missing]


def domains_still_up(names, states):
    return [name for name in names if states[name].state in VMState.ACTIVE]


def describe_error(error):
    return str(error) or type(error).__name__


def run_parallel(function, items, timeout=None):
    """[function(item)] run on a thread each; an item still running at `timeout` gives TimeoutError
    as its result (its thread is left to finish: a libvirt call cannot be cancelled)."""
    if not items:
        return []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(items))
    futures = [pool.submit(function, item) for item in items]
    pool.shutdown(wait=False)
    done, _ = concurrent.futures.wait(futures, timeout=timeout)
    results = []
    for future in futures:
        if future not in done:
            results.append(TimeoutError())
        elif future.exception() is not None:
            results.append(future.exception())
        else:
            results.append(future.result())
    return results


class Command:
    """One initialize() or shutdown() call: who asked, for which domains, and how it ended."""

    def __init__(self, name, domains):
        self.name = name
        self.domains = domains
        self.status = None
        self.problems = []
        self.warnings = []

    def describe(self):
        return '{} ({})'.format(self.name, ', '.join(self.domains))


@Pyro4.behavior(instance_mode='single')
class CamvirtDaemon:
    """The object camvirtd serves over Pyro4."""

    def __init__(self, config, hypervisor, probe, log, refusals=None):
        self._config = config
        # issue 14: callers' refusals rate-limited; control machines compared as addresses.
        self._refusals = refusals or RefusalLog(log)
        self._control = ControlMachines(config.control_ips)
        self._hypervisor = hypervisor
        self._probe = probe
        self._log = log
        self._command_lock = threading.Lock()
        self._command = None
        self._last_command = None
        self._crashes = CrashWatch(config.restart_crashed_per_hour)
        hypervisor.add_listener(self._on_domain_change)

    # --- commands ---------------------------------------------------------------------------------

    @Pyro4.expose
    def initialize(self, domains=None):
        """Starts the VMs that are off and waits until every camd in them answers."""
        problem = command_problem(domains)  # issue 14: arguments checked before anything acts
        if problem:
            return self._refuse_arguments('initialize', problem)
        return self._initialize(domains, caller_ip())

    def _initialize(self, domains, caller):
        with self._command_session('initialize', domains, caller) as command:
            if command.status is None:
                deadline = time.monotonic() + self._config.initialize_timeout
                command.problems += self._start_domains(command.domains, deadline)
                command.problems += self._wait_for_cameras(command.domains, deadline)
                if not command.problems:
                    self._crashes.expect_running(command.domains)
        return command.status

    @Pyro4.expose
    def shutdown(self, domains=None, force=None):
        """Asks the running VMs to shut down and waits until they are off. With force (default: the
        config's force_shutdown), powers off whatever still runs when shutdown_timeout passes."""
        problem = command_problem(domains, force)  # issue 14: arguments checked before anything acts
        if problem:
            return self._refuse_arguments('shutdown', problem)
        force = self._config.force_shutdown if force is None else bool(force)
        with self._command_session('shutdown', domains, caller_ip()) as command:
            if command.status is None:
                self._crashes.expect_off(command.domains)
                deadline = time.monotonic() + self._config.shutdown_timeout
                command.problems += self._stop_domains(command.domains, deadline)
                if force and command.problems:
                    command.problems = self._power_off(command)
        return command.status

    def _refuse_arguments(self, name, problem):
        """issue 14: a command with arguments of the wrong shape changes nothing, not last_command."""
        self._refusals.refused(caller_ip(), name, 'invalid arguments', problem)
        return CommandStatus.InvalidArguments

    @contextlib.contextmanager
    def _command_session(self, name, requested, ip):
        """Checks the caller, takes the command lock and logs the outcome. Yields a Command whose
        status is already set when the command is refused."""
        domains, unknown = select_domains(self._config.domains, requested)
        command = Command(name, domains)
        if ip != SELF and ip not in self._control:
            self._refusals.refused(ip, name, 'not a control machine')
            command.status = CommandStatus.InvalidControlIP
        elif unknown:
            named = quote(unknown[0]) if len(unknown) == 1 else quote(unknown)
            self._refusals.refused(ip, name, 'unknown domain', named)
            command.status = CommandStatus.UnknownDomain
        elif not self._command_lock.acquire(blocking=False):
            running = self._command  # may be None for an instant while the holder starts or ends
            self._refusals.refused(ip, name, '{} is running'.format(running.name if running else 'another command'))
            command.status = CommandStatus.Blocked
        if command.status is not None:
            yield command
            return
        self._command = command
        self._log.info('{} requested by {}'.format(command.describe(), ip))
        try:
            yield command
        except Exception as e:  # pylint: disable=broad-except
            command.problems.append('unexpected error: {!r}'.format(e))
        finally:
            self._finish(command)
            self._command = None
            self._command_lock.release()

    def _finish(self, command):
        command.status = CommandStatus.Failed if command.problems else CommandStatus.Succeeded
        for warning in command.warnings:
            self._log.warning('{}: {}'.format(command.name, warning))
        for problem in command.problems:
            self._log.error('{}: {}'.format(command.name, problem))
        outcome = 'failed' if command.problems else 'succeeded'
        self._log.info('{} {}'.format(command.describe(), outcome))
        self._last_command = {'name': command.name, 'domains': command.domains,
                              'status': command.status, 'message': '; '.join(command.problems),
                              'time': utc_iso(time.time())}

    def _libvirt_problem(self):
        if self._hypervisor.connected:
            return []
        return ['libvirt at {} is unreachable'.format(self._hypervisor.uri)]

    def _start_domains(self, names, deadline):
        """Starts every domain of `names` that is off, all at once. Returns problems."""
        problems = self._libvirt_problem()
        if problems:
            return problems
        states = self._hypervisor.states()
        problems += ['domain {} does not exist in libvirt'.format(n)
                     for n in names if states[n].state == VMState.Missing]
        to_start = domains_to_start(names, states)
        results = run_parallel(self._hypervisor.start_domain, to_start, deadline - time.monotonic())
        for name, result in zip(to_start, results):
            if isinstance(result, TimeoutError):
                problems.append('libvirt did not start domain {} in time'.format(name))
            elif isinstance(result, Exception):
                problems.append('cannot start domain {}: {}'.format(name, describe_error(result)))
        return problems

    def _wait_for_cameras(self, names, deadline):
        """Waits until every camd of `names` answers; returns a problem for each that does not."""
        cameras = [camera for name in names for camera in self._config.domains[name]]
        results = run_parallel(lambda camera: self._wait_for_camera(camera, deadline), cameras)
        return [r if isinstance(r, str) else 'camera {}: {!r}'.format(c.id, r)
                for c, r in zip(cameras, results) if r is not None]

    def _wait_for_camera(self, camera, deadline):
        """None once the camd answers, else why it did not."""
        domain = camera.domain
        hypervisor = self._hypervisor
        running = hypervisor.wait_for(
            lambda states, connected: not connected or states[domain].state == VMState.Running, deadline)
        state = hypervisor.state(domain)
        if not running or state != VMState.Running:
            return 'camera {}: domain {} is {}, not running'.format(camera.id, domain, state)

        def vm_gone():
            return hypervisor.state(domain) != VMState.Running

        self._probe.forget(camera.address)
        if wait_until_answering(self._probe, camera.address, deadline, vm_gone):
            return None
        if vm_gone():
            return 'camera {}: domain {} became {} while waiting for camd'.format(
                camera.id, domain, hypervisor.state(domain))
        return 'camera {} ({} at {}:{}) did not answer within {} s'.format(
            camera.id, camera.daemon_name, camera.address.host, camera.address.port,
            self._config.initialize_timeout)

    def _stop_domains(self, names, deadline):
        """Asks each running domain of `names` to shut down, again every shutdown_repeat_interval
        while it has not begun to, and waits until all are off. Returns problems."""
        problems = self._libvirt_problem()
        if problems:
            return problems
        hypervisor = self._hypervisor
        to_stop = domains_still_up(names, hypervisor.states())
        asked = [name for name in to_stop if hypervisor.state(name) == VMState.Running]
        while True:
            problems = self._request_shutdowns(asked, deadline)
            repeat_at = min(deadline, time.monotonic() + self._config.shutdown_repeat_interval)
            hypervisor.wait_for(lambda states, connected: not connected or not domains_still_up(
                to_stop, states), repeat_at)
            still_up = domains_still_up(to_stop, hypervisor.states())
            if not hypervisor.connected or not still_up or time.monotonic() >= deadline:
                break
            asked = [name for name in still_up if hypervisor.state(name) == VMState.Running]
        problems += self._libvirt_problem()
        problems += ['domain {} is still {} after {} s'.format(name, hypervisor.state(name),
                                                               self._config.shutdown_timeout)
                     for name in domains_still_up(to_stop, hypervisor.states())]
        for name in to_stop:
            for camera in self._config.domains[name]:
                self._probe.forget(camera.address)
        return problems

    def _power_off(self, command):
        """Destroys the command's domains that are still up; returns the problems left after."""
        still_up = domains_still_up(command.domains, self._hypervisor.states())
        for name in still_up:
            command.warnings.append('forced power-off of domain {}: still {} after {} s'.format(
                name, self._hypervisor.state(name), self._config.shutdown_timeout))
        deadline = time.monotonic() + FORCED_POWER_OFF_TIMEOUT
        results = run_parallel(self._hypervisor.destroy_domain, still_up, FORCED_POWER_OFF_TIMEOUT)
        problems = ['cannot power off domain {}: {}'.format(name, describe_error(result))
                    for name, result in zip(still_up, results) if isinstance(result, Exception)]
        self._hypervisor.wait_for(lambda states, connected: not connected or not domains_still_up(
            still_up, states), deadline)
        problems += self._libvirt_problem()
        problems += ['domain {} is still {} after a forced power-off'.format(name, self._hypervisor.state(name))
                     for name in domains_still_up(still_up, self._hypervisor.states())]
        return problems

    # --- crash awareness --------------------------------------------------------------------------

    def _on_domain_change(self, name, _old, new):
        """Called by the hypervisor on every state change (off the command threads)."""
        command = self._command
        if command is not None and name in command.domains:
            return  # the command itself is changing it
        if not self._crashes.observe(name, new, time.time()):
            return
        self._log.error('domain {} stopped unexpectedly: it is {} while it should run'.format(name, new))
        if self._config.restart_crashed:
            threading.Thread(target=self._restart_crashed, args=(name,), daemon=True).start()

    def _restart_crashed(self, name):
        if not self._crashes.take_restart(time.time()):
            self._log.error('not restarting domain {}: {} automatic restarts in the last hour'.format(
                name, self._config.restart_crashed_per_hour))
            return
        self._log.warning('restarting domain {} after its unexpected stop'.format(name))
        if self._initialize([name], SELF) == CommandStatus.Blocked:
            self._log.error('not restarting domain {}: another command is running'.format(name))

    def _request_shutdowns(self, names, deadline):
        results = run_parallel(self._hypervisor.request_shutdown, names, deadline - time.monotonic())
        problems = []
        for name, result in zip(names, results):
            if isinstance(result, libvirt.libvirtError) and \
                    result.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
                continue  # it stopped between our look and our request
            if isinstance(result, Exception):
                problems.append('cannot shut down domain {}: {}'.format(name, describe_error(result)))
        return problems

    # --- queries ----------------------------------------------------------------------------------

    @Pyro4.expose
    def report_camera_status(self, camera_id):
        """camd's report_status() with 'vm_active': True, or the offline reply."""
        camera = self._config.cameras.get(camera_id) if is_camera_id(camera_id) else None  # issue 14
        if camera is None:
            raise ValueError('unknown camera id {} (this camvirtd has {})'.format(
                quote(camera_id), ', '.join(sorted(self._config.cameras))))
        if self._command is not None:
            return dict(OFFLINE_CAMERA_STATUS)
        return self._camera_status(camera, self._hypervisor.state(camera.domain))

    def _camera_status(self, camera, vm_state):
        if vm_state not in PROBED_VM_STATES:
            # Connections kept from before the VM stopped are dead; start afresh when it runs again.
            self._probe.forget(camera.address)
            return dict(OFFLINE_CAMERA_STATUS)
        status = self._probe.status(camera.address)
        if status is None:
            return dict(OFFLINE_CAMERA_STATUS)
        reply = dict(status)
        reply['vm_active'] = True
        return reply

    @Pyro4.expose
    def report_status(self):
        """Every domain's state since when, and every camera's status, for `camvirt status`."""
        states = self._hypervisor.states()
        cameras = list(self._config.cameras.values())
        statuses = run_parallel(lambda c: self._camera_status(c, states[c.domain].state), cameras)
        by_id = dict(zip((c.id for c in cameras), statuses))
        domains = []
        for name, domain_cameras in self._config.domains.items():
            stop = self._crashes.unexpected_stop(name)
            domains.append({
                'name': name,
                'state': states[name].state,
                'since': utc_iso(states[name].since),
                'unexpected_stop': {'state': stop['state'], 'time': utc_iso(stop['time'])} if stop else None,
                'cameras': [camera_entry(c, by_id[c.id]) for c in domain_cameras],
            })
        command = self._command
        return {
            'daemon': self._config.daemon_name,
            'libvirt_uri': self._hypervisor.uri,
            'libvirt_connected': self._hypervisor.connected,
            'command': command.name if command else None,
            'last_command': self._last_command,
            'domains': domains,
        }


def camera_entry(camera, status):
    state = status.get('state', CameraState.Disabled) if isinstance(status, dict) else CameraState.Disabled
    if not status.get('vm_active'):
        state = CameraState.Disabled
    return {'id': camera.id, 'daemon': camera.daemon_name, 'state': state,
            'label': CameraState.label(state), 'status': status}
