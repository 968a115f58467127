"""The object camvirtd serves over Pyro4: the four methods the rockit network calls, each handing
over at once to the command path (commands.py) or the queries (queries.py).

  initialize(domains=None) -> CommandStatus     shutdown(domains=None, force=None) -> CommandStatus
  report_camera_status(camera_id) -> dict       report_status() -> dict (for camvirt status)
  report_history() -> list (for camvirt history)
"""

import Pyro4

from ..shared.constants import CommandStatus
from ..virt.devices import DevicePresence
from ..wire import callers
from ..wire.refusals import RefusalLog
from .arguments import command_problem
from .commands import Commands
from .queries import Status
from .workers import Workers


@Pyro4.behavior(instance_mode='single')
class CamvirtAPI:
    """Wires the parts together; close() ends the threads they share."""

    def __init__(self, config, hypervisor, probe, log, memory=None, refusals=None):
        self._config = config
        self._probe = probe
        # Callers' refusals, rate-limited in the log (a flood must not drown real errors).
        self._refusals = refusals or RefusalLog(log)
        self._workers = Workers()
        self._devices = DevicePresence(hypervisor, config.domains, log)
        self._commands = Commands(config, hypervisor, probe, log, self._workers, self._devices, memory,
                                  self._refusals)
        self._status = Status(config, hypervisor, probe, self._commands, self._workers, self._devices)
        hypervisor.add_listener(self._forget_stale_connections)

    def close(self, command_timeout=5):
        """Lets a command still running log how it ended (it fails at once once libvirt is let go),
        then ends the threads the parts share."""
        self._commands.wait_idle(command_timeout)
        self._workers.stop()
        self._devices.close()

    @Pyro4.expose
    def initialize(self, domains=None):
        """Starts the VMs that are off and waits until every camd in them answers."""
        problem = command_problem(domains)  # arguments checked before anything acts
        if problem:
            return self._refuse_arguments('initialize', problem)
        return self._commands.initialize(domains, callers.current())

    @Pyro4.expose
    def shutdown(self, domains=None, force=None):
        """Asks the running VMs to shut down and waits until they are off. With force (default: the
        config's force_shutdown), powers off whatever still runs when shutdown_timeout passes."""
        problem = command_problem(domains, force)  # arguments checked before anything acts
        if problem:
            return self._refuse_arguments('shutdown', problem)
        force = self._config.force_shutdown if force is None else force
        return self._commands.shutdown(domains, force, callers.current())

    def _refuse_arguments(self, name, problem):
        """A command with arguments of the wrong shape changes nothing, not even last_command."""
        self._refusals.refused(callers.describe(callers.current()), name, 'invalid arguments', problem)
        return CommandStatus.InvalidArguments

    @Pyro4.expose
    def report_camera_status(self, camera_id):
        """camd's report_status() with 'vm_active': True, or {'state': 0, 'vm_active': False} when the VM
        is off or a command acts on it; TimeoutError or ConnectionError when camd gives no status while
        its VM runs."""
        return self._status.camera(camera_id)

    @Pyro4.expose
    def report_status(self):
        """Every domain's state since when, every camera's status, the running and last command."""
        return self._status.report()

    @Pyro4.expose
    def report_history(self):
        """The commands camvirtd remembers (its state file's), oldest first: caller, start, duration,
        result and problems of each."""
        return self._status.history()

    def _forget_stale_connections(self, name, _old, _new):
        """The one place kept camd connections are dropped: a domain whose state changed has a camd
        that stopped or is new, so connections kept to the old one are stale."""
        for camera in self._config.domains.get(name, ()):
            self._probe.forget(camera.address)
