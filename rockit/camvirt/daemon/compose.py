"""camvirtd composed: its parts built, started and stopped in one order, whoever runs it (the
service, the in-process tests, the benchmark), served by the hardened wire server the service uses.

Built: the wire server first (a port that cannot be listened on fails before anything else starts),
then libvirt, the camd probe and the API over them. Started: libvirt, then the server's loop.
Stopped: first what takes requests; then libvirt, which ends every wait of a command still running
(it fails as "libvirt unreachable" instead of running on to its deadline); then the work pool, now
quick to drain; then the state file's writer, once it has written the last command; the refusals'
last summaries at the end. The log is its owner's to close."""

import threading

from ..shared.addresses import ControlMachines
from ..virt.hypervisor import Hypervisor
from ..wire import server as wire
from ..wire.refusals import RefusalLog
from .api import CamvirtAPI
from .cameras import CameraProbe

SERVER_STOP_TIMEOUT = 5.0
# What a stop waits for the state file's last write (a stuck disk must not keep camvirtd from stopping).
MEMORY_CLOSE_TIMEOUT = 5.0


class Camvirtd:
    """config: the parsed config; log: an ObservatoryLog (or its test double); memory: a
    statefile.DaemonMemory (None: nothing remembered); libvirt_uri: instead of the config's (a
    test world's own driver file); limits: overrides of the wire server's limits.
    Raises OSError or Pyro4's CommunicationError when the port cannot be listened on."""

    def __init__(self, config, log, memory=None, libvirt_uri=None, limits=None):
        self.config = config
        self._memory = memory
        self.refusals = RefusalLog(log)  # callers' refusals, rate-limited in the log
        address = config.daemon
        self.pyro = wire.HardenedDaemon(address.host, address.port, self.refusals,
                                        privileged=ControlMachines(config.control_ips).__contains__,
                                        limits=limits)
        self.hypervisor = Hypervisor(libvirt_uri or config.libvirt_uri, config.domains, log)
        self.probe = CameraProbe(config.camera_timeout)
        self.api = CamvirtAPI(config, self.hypervisor, self.probe, log, memory, self.refusals)
        self.uri = self.pyro.register(self.api, objectId=address.object_id)
        self._server = threading.Thread(target=self.pyro.requestLoop, name='pyro', daemon=True)

    def start(self):
        self.hypervisor.start()
        self._server.start()
        return self

    def stop(self):
        self.pyro.shutdown()  # stops the loop, the wire workers and closes every connection
        if self._server.is_alive():
            self._server.join(timeout=SERVER_STOP_TIMEOUT)
        self.hypervisor.stop()
        self.api.close()
        if self._memory is not None:
            self._memory.close(MEMORY_CLOSE_TIMEOUT)  # the last command's record written, the writer ended
        self.probe.close()
        self.refusals.flush()  # the last interval's summaries
