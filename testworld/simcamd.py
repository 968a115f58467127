"""Simulated camera daemons for the sandbox, the tests and the benchmarks.

A SimulatedCamd answers report_status() as a rockit camd does (state IDLE, cooler locked, a sensor
temperature, ...). A HungCamd accepts TCP connections and never says a word, as a camd whose
process is stuck does.
"""

import random
import socket
import threading
import time

import Pyro4
import Pyro4.errors

from rockit.camvirt.shared.constants import CameraState

COOLER_LOCKED = 5


@Pyro4.expose
@Pyro4.behavior(instance_mode='single')
class SimulatedCamera:
    """The Pyro object a simulated camd serves."""

    def __init__(self, camera_id):
        self.camera_id = camera_id
        self.state = CameraState.Idle
        self.calls = 0

    def report_status(self):
        self.calls += 1
        return {
            'date': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
            'state': self.state,
            'camera_id': self.camera_id,
            'cooler_mode': COOLER_LOCKED,
            'cooler_setpoint': -40.0,
            'temperature': round(-40.0 + random.uniform(-0.05, 0.05), 2),
            'exposure_time': 5.0,
            'exposure_progress': 0,
            'sequence_frame_count': 0,
            'sequence_frame_limit': 0,
        }


class _ClosingDaemon(Pyro4.Daemon):
    """A Pyro4 daemon that also drops its open client connections when it shuts down, as a camd
    does when its VM powers off (Pyro's own shutdown leaves them being served)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = set()
        self._lock = threading.Lock()
        self._closing = False

    def _handshake(self, conn, denied_reason=None):  # pylint: disable=arguments-differ
        with self._lock:
            if self._closing:  # connected while we shut down: a powered-off VM says nothing
                conn.close()
                return False
            self._clients.add(conn)
        return super()._handshake(conn, denied_reason)

    def clientDisconnect(self, conn):
        with self._lock:
            self._clients.discard(conn)

    def shutdown(self):
        with self._lock:
            self._closing = True
            clients, self._clients = list(self._clients), set()
        super().shutdown()
        for conn in clients:
            conn.close()


class SimulatedCamd:
    """A Pyro4 daemon serving one SimulatedCamera at a registry address, on its own thread."""

    def __init__(self, address, camera_id):
        self.address = address
        self.camera = SimulatedCamera(camera_id)
        self._daemon = None
        self._thread = None

    def start(self):
        self._daemon = _ClosingDaemon(host=self.address.host, port=self.address.port)
        self._daemon.register(self.camera, objectId=self.address.object_id)
        self._thread = threading.Thread(target=self._daemon.requestLoop, daemon=True,
                                        name='camd-' + self.address.object_id)
        self._thread.start()
        return self

    def stop(self):
        if self._daemon is not None:
            self._daemon.shutdown()
            self._thread.join(timeout=5)
            self._daemon.unregister(self.camera)  # so that start() can serve it again
            self._daemon.close()
            self._daemon = None

    @property
    def running(self):
        return self._daemon is not None


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


# Behaviours of a simulated camera VM's camd.
ANSWERS = 'answers'   # serves report_status() once the VM has booted
HUNG = 'hung'         # accepts connections once the VM has booted, never answers
ABSENT = 'absent'     # never comes up
BEHAVIOURS = (ANSWERS, HUNG, ABSENT)


class CameraVMSimulator:
    """Plays the guests of libvirt domains: when a domain starts (a lifecycle event) its camds come
    up after boot_delay seconds; when it stops they go away. Works on any libvirt connection whose
    driver sends lifecycle events (the test driver in-process, or a libvirtd's)."""

    def __init__(self, conn, cameras, boot_delay=2.0, log=None, per_domain=False):
        """cameras: {domain name: [(DaemonAddress, camera id, behaviour)]}; log(line), when given, is
        told what each guest does (the sandbox prints it). per_domain: one event callback per domain,
        on a connection that camvirtd follows too (libvirt tracks one unfiltered callback per
        connection and event; a test driver world of its own has only that connection)."""
        import libvirt  # pylint: disable=import-outside-toplevel
        self._libvirt = libvirt
        self._log = log or (lambda _line: None)
        self._conn = conn
        self._boot_delay = boot_delay
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
            if behaviour == HUNG:
                server = HungCamd(address).start()
            else:
                server = SimulatedCamd(address, camera_id).start()
        except (OSError, Pyro4.errors.CommunicationError) as e:
            self._log('{}: camd of camera {} cannot listen on {}: {}'.format(name, camera_id, where, e))
            return None
        self._log('{}: booted; camd of camera {} {} at {}'.format(
            name, camera_id, 'hangs' if behaviour == HUNG else 'answers', server.address.uri))
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
    import argparse  # pylint: disable=import-outside-toplevel
    from rockit.camvirt.shared.registry import DaemonAddress  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(prog='python -m testworld.simcamd')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--object-id', required=True)
    parser.add_argument('--camera-id', required=True)
    parser.add_argument('--hangs', action='store_true', help='accept connections and never answer')
    args = parser.parse_args(argv)
    address = DaemonAddress(args.object_id, args.object_id, args.host, args.port)
    (HungCamd(address) if args.hangs else SimulatedCamd(address, args.camera_id)).start()
    print('camd {} of camera {} {} on {}:{}'.format(args.object_id, args.camera_id,
                                                  'hangs' if args.hangs else 'answers', args.host, args.port),
          flush=True)
    threading.Event().wait()


if __name__ == '__main__':
    main()
