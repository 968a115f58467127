"""Simulated camera daemons for the sandbox, the tests and the benchmarks, behaving as the real ones do.

A real camd (e.g. qhy_camd) is a Pyro4 thread-pool server: 40 workers, one per open connection and
held for as long as the client keeps it open (no idle timeout); with all 40 taken every new client is
refused ("no free workers"). Its report_status() takes the camera lock, which initialize() holds for the
whole camera initialisation (about a minute, every evening). Before initialisation it answers
{'state': 0} alone; afterwards the full status, the cooler working its way down to its setpoint.

SimulatedCamd is that server. HungCamd accepts TCP connections and never says a word, as a camd whose
process is stuck does. DrippingCamd answers the handshake with a header declaring a long reply and then
sends it one byte at a time, as a camd wedged in the middle of a reply may: hostile to a client whose
timeout bounds each recv rather than the whole reply.
"""

import random
import socket
import threading
import time

import Pyro4
import Pyro4.errors
import Pyro4.util
from Pyro4 import message
from Pyro4.socketserver import threadpool, threadpoolserver

from rockit.camvirt.shared.constants import CameraState

# A real camd's Pyro4 thread pool (Pyro4's THREADPOOL_SIZE default, which the rockit daemons keep).
CAMD_WORKERS = 40
# rockit camd return codes (rockit.camera.*.constants.CommandStatus).
SUCCEEDED, BLOCKED, NOT_UNINITIALIZED, NOT_INITIALIZED = 0, 1, 8, 7
# Cooler modes: 1 Warm, 3 Cooling, 5 Locked.
COOLER_WARM, COOLER_COOLING, COOLER_LOCKED = 1, 3, 5
# How long a simulated camera takes to cool from initialisation to its setpoint.
COOLING_SECONDS = 2.0
# A real camera initialisation takes about a minute; the tests ask for less.
DEFAULT_INITIALIZE_SECONDS = 1.0


@Pyro4.expose
@Pyro4.behavior(instance_mode='single')
class SimulatedCamera:
    """The Pyro object a simulated camd serves: report_status() behind the camera lock, {'state': 0}
    until initialize(), which holds the lock for initialize_seconds."""

    def __init__(self, camera_id, initialized=False, initialize_seconds=DEFAULT_INITIALIZE_SECONDS):
        self.camera_id = camera_id
        self.initialize_seconds = initialize_seconds
        self.state = CameraState.Idle if initialized else CameraState.Disabled
        self.calls = 0
        self._lock = threading.Lock()          # the camera lock
        self._command_lock = threading.Lock()  # one command at a time, others Blocked
        self._initialized_at = time.monotonic() - COOLING_SECONDS if initialized else None

    @property
    def initialized(self):
        return self._initialized_at is not None

    def report_status(self):
        with self._lock:
            self.calls += 1
            if self._initialized_at is None:
                return {'state': CameraState.Disabled}
            return self._status()

    def _status(self):
        cooled = min(1.0, (time.monotonic() - self._initialized_at) / COOLING_SECONDS)
        cooler = COOLER_LOCKED if cooled >= 1.0 else COOLER_COOLING
        return {
            'date': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
            'state': self.state,
            'camera_id': self.camera_id,
            'cooler_mode': cooler,
            'cooler_setpoint': -40.0,
            'temperature': round(20.0 - 60.0 * cooled + random.uniform(-0.05, 0.05), 2),
            'temperature_locked': cooler == COOLER_LOCKED,
            'exposure_time': 5.0,
            'exposure_progress': 0,
            'sequence_frame_count': 0,
            'sequence_frame_limit': 0,
        }

    def initialize(self):
        """Connects to the (simulated) camera: the camera lock held all along, as the real one does."""
        if not self._command_lock.acquire(blocking=False):
            return BLOCKED
        try:
            with self._lock:
                if self._initialized_at is not None:
                    return NOT_UNINITIALIZED
                self.state = CameraState.Initializing
                time.sleep(self.initialize_seconds)  # the camera SDK at work
                self.state = CameraState.Idle
                self._initialized_at = time.monotonic()
                return SUCCEEDED
        finally:
            self._command_lock.release()

    def shutdown(self):
        """Disconnects from the camera."""
        if not self._command_lock.acquire(blocking=False):
            return BLOCKED
        try:
            with self._lock:
                if self._initialized_at is None:
                    return NOT_INITIALIZED
                self._initialized_at = None
                self.state = CameraState.Disabled
                return SUCCEEDED
        finally:
            self._command_lock.release()


class _CamdPool(threadpool.Pool):
    """Pyro4's worker pool with a camd's fixed size (Pyro's own reads the process-wide config, which a
    camvirtd in the same test process sets to its own size)."""

    def process(self, job):
        if self.closed:
            raise threadpool.PoolError('job queue is closed')
        if not self.idle and self.num_workers() >= CAMD_WORKERS:
            raise threadpool.NoFreeWorkersError('no free workers available, increase thread pool size')
        super().process(job)


class _CamdDaemon(Pyro4.Daemon):
    """A Pyro4 thread-pool daemon as a camd runs it, which also drops its open client connections when
    it shuts down, as a camd does when its VM powers off (Pyro's own shutdown leaves them being served).
    It counts the connections it holds, and the most it held at once."""

    _create_lock = threading.Lock()

    def __init__(self, *args, **kwargs):
        self._clients = set()
        self._lock = threading.Lock()
        self._closing = False
        self.peak_connections = 0
        self.refused = 0
        with self._create_lock:  # the server type is read from the process-wide config here only
            servertype, Pyro4.config.SERVERTYPE = Pyro4.config.SERVERTYPE, 'thread'
            try:
                super().__init__(*args, **kwargs)
            finally:
                Pyro4.config.SERVERTYPE = servertype
        assert isinstance(self.transportServer, threadpoolserver.SocketServer_Threadpool)
        self.transportServer.pool.__class__ = _CamdPool  # the same pool, with a camd's size

    def _handshake(self, conn, denied_reason=None):
        with self._lock:
            if self._closing:  # connected while we shut down: a powered-off VM says nothing
                conn.close()
                return False
            if denied_reason is not None:
                self.refused += 1
            else:
                self._clients.add(conn)
                self.peak_connections = max(self.peak_connections, len(self._clients))
        return super()._handshake(conn, denied_reason)

    def clientDisconnect(self, conn):
        with self._lock:
            self._clients.discard(conn)

    def connections(self):
        with self._lock:
            return len(self._clients)

    def shutdown(self):
        with self._lock:
            self._closing = True
            clients, self._clients = list(self._clients), set()
        super().shutdown()
        for conn in clients:
            conn.close()


class SimulatedCamd:
    """A camd serving one SimulatedCamera at a registry address, on its own thread."""

    def __init__(self, address, camera_id, initialized=False, initialize_seconds=DEFAULT_INITIALIZE_SECONDS):
        self.address = address
        self.camera = SimulatedCamera(camera_id, initialized, initialize_seconds)
        self._daemon = None
        self._thread = None
        self.peak_connections = 0

    def start(self):
        self._daemon = _CamdDaemon(host=self.address.host, port=self.address.port)
        self._daemon.register(self.camera, objectId=self.address.object_id)
        self._thread = threading.Thread(target=self._daemon.requestLoop, daemon=True,
                                        name='camd-' + self.address.object_id)
        self._thread.start()
        return self

    def stop(self):
        if self._daemon is not None:
            self.peak_connections = max(self.peak_connections, self._daemon.peak_connections)
            self._daemon.shutdown()
            self._thread.join(timeout=5)
            self._daemon.unregister(self.camera)  # so that start() can serve it again
            self._daemon.close()
            self._daemon = None

    def initialize_in_background(self):
        """Starts the camera's initialisation, as opsd's cam_initialize does, on a thread of its own;
        returns that thread (it ends when initialize() returns)."""
        thread = threading.Thread(target=self.camera.initialize, daemon=True,
                                  name='camd-initialize-' + self.address.object_id)
        thread.start()
        return thread

    @property
    def running(self):
        return self._daemon is not None

    def connections(self):
        """How many client connections it holds now (each takes one of its workers)."""
        return self._daemon.connections() if self._daemon is not None else 0

    def most_connections(self):
        """The most client connections it held at once, over all its runs."""
        current = self._daemon.peak_connections if self._daemon is not None else 0
        return max(self.peak_connections, current)

    def refused(self):
        return self._daemon.refused if self._daemon is not None else 0


class HungCamd:
    """Listens at a camd's address, accepts every connection and never answers."""

    def __init__(self, address):
        self.address = address
        self._listener = None
        self._held = []
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.address.host, self.address.port))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, daemon=True, name='hung-camd')
        self._thread.start()
        return self

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._held.append(conn)
            self._accepted(conn)

    def _accepted(self, conn):
        """What it does with a new connection: nothing (it hangs)."""

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    @property
    def running(self):
        return self._listener is not None

    def connections(self):
        """How many connections it has accepted (and left unanswered)."""
        return len(self._held)


class DrippingCamd(HungCamd):
    """Listens at a camd's address and answers each connection's first message with the header of a
    CONNECTOK declaring `declared` bytes, then sends them one byte every `interval` seconds (until
    stop() or the declared bytes are sent): a reply that never ends for a client bounding each recv."""

    def __init__(self, address, declared=100_000, interval=0.5):
        super().__init__(address)
        self._reply = message.Message(message.MSG_CONNECTOK, b'x' * declared,
                                      Pyro4.util.get_serializer('serpent').serializer_id, 0, 1).to_bytes()
        self._interval = interval
        self.bytes_sent = 0

    def _accepted(self, conn):
        threading.Thread(target=self._drip, args=(conn,), daemon=True, name='dripping-camd').start()

    def _drip(self, conn):
        conn.settimeout(5)
        try:
            conn.recv(4096)  # the client's CONNECT
            conn.sendall(self._reply[:message.Message.header_size])
            for position in range(message.Message.header_size, len(self._reply)):
                if self._stop.wait(self._interval):
                    return
                conn.sendall(self._reply[position:position + 1])
                self.bytes_sent += 1
        except OSError:
            return  # the client gave up on us


# Behaviours of a simulated camera VM's camd.
ANSWERS = 'answers'              # serves report_status() once the VM has booted, its camera initialised
UNINITIALISED = 'uninitialised'  # serves {'state': 0} until initialize() is called
INITIALISING = 'initialising'    # begins its camera's initialisation as it boots (the lock held)
HUNG = 'hung'                    # accepts connections once the VM has booted, never answers
DRIPPING = 'dripping'            # answers the handshake one byte every half second
ABSENT = 'absent'                # never comes up
BEHAVIOURS = (ANSWERS, UNINITIALISED, INITIALISING, HUNG, DRIPPING, ABSENT)


def start_camd(address, camera_id, behaviour, initialize_seconds=DEFAULT_INITIALIZE_SECONDS):
    """A started camd server of the given behaviour (not ABSENT) at `address`."""
    if behaviour == HUNG:
        return HungCamd(address).start()
    if behaviour == DRIPPING:  # a reply small enough to be read: only a deadline for the whole call ends it
        return DrippingCamd(address, declared=10_000).start()
    camd = SimulatedCamd(address, camera_id, initialized=behaviour == ANSWERS,
                         initialize_seconds=initialize_seconds).start()
    if behaviour == INITIALISING:
        camd.initialize_in_background()
    return camd


class CameraVMSimulator:
    """Plays the guests of libvirt domains: when a domain starts (a lifecycle event) its camds come
    up after boot_delay seconds; when it stops they go away. Works on any libvirt connection whose
    driver sends lifecycle events (the test driver in-process, or a libvirtd's)."""

    def __init__(self, conn, cameras, boot_delay=2.0, log=None, per_domain=False,
                 initialize_seconds=DEFAULT_INITIALIZE_SECONDS):
        """cameras: {domain name: [(DaemonAddress, camera id, behaviour)]}; log(line), when given, is
        told what each guest does (the sandbox prints it). per_domain: one event callback per domain,
        on a connection that camvirtd follows too (libvirt tracks one unfiltered callback per
        connection and event; a test driver world of its own has only that connection).
        initialize_seconds: how long a camd's initialize() holds its camera lock."""
        import libvirt
        self._libvirt = libvirt
        self._log = log or (lambda _line: None)
        self._conn = conn
        self._boot_delay = boot_delay
        self.initialize_seconds = initialize_seconds
        self._lock = threading.Lock()
        self._servers = {}   # domain -> [SimulatedCamd | HungCamd]
        self._timers = {}    # domain -> Timer
        self._stopping = {}  # domain -> Thread stopping the camds of its last run
        self._cameras = cameras
        targets = [conn.lookupByName(name) for name in cameras] if per_domain else [None]
        self._callback_ids = [conn.domainEventRegisterAny(
            dom, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None) for dom in targets]

    def sync(self):
        """Brings camds up for domains already running, as if they had just booted."""
        for name in self._cameras:
            try:
                running = self._conn.lookupByName(name).isActive()
            except self._libvirt.libvirtError:
                continue
            if running:
                self._boot(name)

    def _on_lifecycle(self, _conn, dom, event, _detail, _opaque):
        name = dom.name()
        if name not in self._cameras:
            return
        if event == self._libvirt.VIR_DOMAIN_EVENT_STARTED:
            self._boot(name)
        elif event in (self._libvirt.VIR_DOMAIN_EVENT_STOPPED, self._libvirt.VIR_DOMAIN_EVENT_CRASHED):
            self._power_off(name, wait=False)

    def _boot(self, name):
        with self._lock:
            if name in self._timers or name in self._servers:
                return
            timer = threading.Timer(self._boot_delay, self._start_camds, args=(name,))
            timer.daemon = True
            self._timers[name] = timer
        timer.start()

    def _start_camds(self, name):
        with self._lock:
            stopping = self._stopping.pop(name, None)
        if stopping is not None:
            stopping.join()  # the last run's camds must let go of their ports first
        servers = [server for server in (self._start_camd(name, *camera) for camera in self._cameras[name])
                   if server is not None]
        with self._lock:
            if self._timers.pop(name, None) is None:
                stale = servers  # the VM stopped while booting
            else:
                stale, self._servers[name] = [], servers
        for server in stale:
            server.stop()

    def _start_camd(self, name, address, camera_id, behaviour):
        """The started camd server for one camera, or None (absent, or its port is taken)."""
        where = '{}:{}'.format(address.host, address.port)
        if behaviour == ABSENT:
            self._log('{}: booted; camd of camera {} stays absent'.format(name, camera_id))
            return None
        try:
            server = start_camd(address, camera_id, behaviour, self.initialize_seconds)
        except (OSError, Pyro4.errors.CommunicationError) as e:
            self._log('{}: camd of camera {} cannot listen on {}: {}'.format(name, camera_id, where, e))
            return None
        self._log('{}: booted; camd of camera {} {} at {}'.format(name, camera_id, behaviour, server.address.uri))
        return server

    def _power_off(self, name, wait=True):
        """Stops the domain's camds. Without wait, on a thread of its own: stopping a Pyro daemon
        takes a while, and in-process libvirt's event loop is shared with camvirtd's connection."""
        with self._lock:
            timer = self._timers.pop(name, None)
            servers = self._servers.pop(name, [])
            stopper = threading.Thread(target=lambda: [server.stop() for server in servers], daemon=True)
            self._stopping[name] = stopper
        if timer is not None:
            timer.cancel()
        if timer is not None or servers:
            self._log('{}: powered off; its camds are gone'.format(name))
        stopper.start()
        if wait:
            stopper.join()

    def camds(self, name):
        with self._lock:
            return list(self._servers.get(name, []))

    def close(self):
        for callback_id in self._callback_ids:
            try:
                self._conn.domainEventDeregisterAny(callback_id)
            except self._libvirt.libvirtError:
                pass
        for name in list(self._cameras):
            self._power_off(name)


def main(argv=None):
    """Serves one simulated camd until killed: what a real camera guest runs (see guestimage.py)."""
    import argparse

    from rockit.camvirt.shared.registry import DaemonAddress
    parser = argparse.ArgumentParser(prog='python -m testworld.simcamd')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--object-id', required=True)
    parser.add_argument('--camera-id', required=True)
    parser.add_argument('--hangs', action='store_true', help='accept connections and never answer')
    parser.add_argument('--behaviour', choices=[b for b in BEHAVIOURS if b != ABSENT], default=ANSWERS)
    parser.add_argument('--initialize-seconds', type=float, default=DEFAULT_INITIALIZE_SECONDS)
    args = parser.parse_args(argv)
    address = DaemonAddress(args.object_id, args.object_id, args.host, args.port)
    behaviour = HUNG if args.hangs else args.behaviour
    start_camd(address, args.camera_id, behaviour, args.initialize_seconds)
    print('camd {} of camera {} {} on {}:{}'.format(args.object_id, args.camera_id, behaviour, args.host, args.port),
          flush=True)
    threading.Event().wait()


if __name__ == '__main__':
    main()
