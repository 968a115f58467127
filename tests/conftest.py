"""Shared fixtures: libvirt's test driver in-process, simulated camds on ephemeral loopback ports and
a camvirtd served over Pyro4 on loopback, called through real Pyro proxies."""

import json
import os
import random
import re
import socket
import sys
import threading
import time
import uuid

import libvirt
import Pyro4
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rockit.camvirt.cameras import CameraProbe  # noqa: E402
from rockit.camvirt.config import parse_config  # noqa: E402
from rockit.camvirt.hypervisor import Hypervisor, start_event_loop  # noqa: E402
from rockit.camvirt.registry import Registry  # noqa: E402
from rockit.camvirt.server import CamvirtDaemon  # noqa: E402
from rockit.camvirt.service import configure_pyro  # noqa: E402
from testworld.simcamd import ANSWERS, CameraVMSimulator  # noqa: E402

TEST_URI = 'test:///default'
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Ports for servers the tests start later: below Linux's ephemeral range (32768-60999), so that no
# client connection's local port can take one between choosing it and binding it.
_PORT_RANGE = (20000, 32000)


# Every port handed out in this process: a port is free until its server binds it, so without this
# two servers of one world (or of two worlds alive at once) could be given the same one.
_handed_out = set()
_handed_out_lock = threading.Lock()


def free_port():
    """A loopback port that nothing listens on now and that no caller in this process was given
    before, picked at random so parallel runs rarely meet."""
    while True:
        port = random.randrange(*_PORT_RANGE)
        with _handed_out_lock:
            if port in _handed_out:
                continue
            _handed_out.add(port)
        with socket.socket() as s:
            try:
                s.bind(('127.0.0.1', port))
            except OSError:
                continue
            return port


def define_test_domain(conn, name):
    """A new domain on the test driver, copied from its built-in 'test' domain."""
    xml = conn.lookupByName('test').XMLDesc()
    xml = re.sub(r'<uuid>[^<]*</uuid>', '', xml)
    xml = re.sub(r'<name>[^<]*</name>', '<name>{}</name>'.format(name), xml, count=1)
    return conn.defineXML(xml)


def remove_domain(conn, name):
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    if dom.isActive():
        dom.destroy()
    dom.undefine()


class ListLog:
    """An ObservatoryLog stand-in for tests that keeps every line (it is our own class, not libvirt
    or Pyro4, so a recording double is fair)."""

    def __init__(self):
        self.lines = []
        self._lock = threading.Lock()

    def _add(self, level, message):
        with self._lock:
            self.lines.append((level, message))

    def info(self, message):
        self._add('info', message)

    def warning(self, message):
        self._add('warning', message)

    def error(self, message):
        self._add('error', message)

    def text(self):
        with self._lock:
            return '\n'.join('{}: {}'.format(level, message) for level, message in self.lines)


class World:
    """A camvirtd serving on loopback over Pyro4 with domains on the in-process test driver and a
    CameraVMSimulator playing their guests."""

    def __init__(self, conn, domains=2, cameras_per_domain=1, behaviours=None, boot_delay=0.05,
                 control_machines=('LocalHost',), initialize_timeout=5, shutdown_timeout=3,
                 camera_timeout=0.5, create_domains=True, shutdown_repeat_interval=1,
                 libvirt_uri=TEST_URI, extra_config=None):
        behaviours = behaviours or {}
        self.conn = conn
        tag = uuid.uuid4().hex[:8]
        self.domain_names = ['cam{}-{}'.format(i + 1, tag) for i in range(domains)]
        self.registry = Registry(machines={'LocalHost': '127.0.0.1', 'Elsewhere': '10.255.255.1'})
        self.registry.merge({'camvirt': ('camvirt_daemon_' + tag, '127.0.0.1', free_port())}, {})
        domains_config, sim_cameras = {}, {}
        for d, name in enumerate(self.domain_names):
            domains_config[name], sim_cameras[name] = {}, []
            for c in range(cameras_per_domain):
                camera_id = 'c{}{}'.format(d + 1, 'abcdefgh'[c])
                daemon = 'camd_' + camera_id
                self.registry.merge({daemon: ('camd_{}_{}'.format(camera_id, tag), '127.0.0.1',
                                              free_port())}, {})
                domains_config[name][camera_id] = daemon
                sim_cameras[name].append((self.registry.daemon(daemon), camera_id,
                                          behaviours.get(camera_id, ANSWERS)))
        self.data = {
            'daemon': 'camvirt', 'log_name': 'camvirtd@test', 'control_machines': list(control_machines),
            'initialize_timeout': initialize_timeout, 'shutdown_timeout': shutdown_timeout,
            'libvirt_uri': TEST_URI, 'camera_timeout': camera_timeout,
            'shutdown_repeat_interval': shutdown_repeat_interval, 'domains': domains_config,
        }
        self.data.update(extra_config or {})
        self.config = parse_config(self.data, '<test config>', self.registry)
        if create_domains:
            for name in self.domain_names:
                define_test_domain(conn, name)
        self.simulator = CameraVMSimulator(conn, sim_cameras, boot_delay)
        self.log = ListLog()
        self.hypervisor = Hypervisor(libvirt_uri, self.config.domains, self.log)
        self.probe = CameraProbe(self.config.camera_timeout)
        self.daemon_object = CamvirtDaemon(self.config, self.hypervisor, self.probe, self.log)
        address = self.config.daemon
        self.pyro = Pyro4.Daemon(host=address.host, port=address.port)
        self.uri = self.pyro.register(self.daemon_object, objectId=address.object_id)
        self.hypervisor.start()
        self._thread = threading.Thread(target=self.pyro.requestLoop, daemon=True)
        self._thread.start()
        if libvirt_uri == TEST_URI:
            assert self.hypervisor.wait_for(lambda states, connected: connected, deadline(5))

    def proxy(self, timeout=30):
        proxy = Pyro4.Proxy(self.uri)
        proxy._pyroTimeout = timeout
        return proxy

    def call(self, method, *args, timeout=30):
        with self.proxy(timeout) as proxy:
            return getattr(proxy, method)(*args)

    def client_env(self, folder):
        """Environment for a ./camvirt process to reach this world: its config and a registry file
        holding the world's ephemeral ports."""
        daemons = {name: {'object_id': a.object_id, 'host': a.host, 'port': a.port}
                   for name, a in ((n, self.registry.daemon(n)) for n in self.registry.daemon_names())}
        machines = {'LocalHost': '127.0.0.1', 'Elsewhere': '10.255.255.1'}
        registry_path = os.path.join(str(folder), 'registry.json')
        config_path = os.path.join(str(folder), 'camvirtd.json')
        with open(registry_path, 'w') as f:
            json.dump({'daemons': daemons, 'machines': machines}, f)
        with open(config_path, 'w') as f:
            json.dump(self.data, f)
        return dict(os.environ, CAMVIRTD_REGISTRY=registry_path, CAMVIRTD_CONFIG_PATH=config_path)

    def domain(self, name):
        return self.conn.lookupByName(name)

    def camera_address(self, camera_id):
        return self.config.cameras[camera_id].address

    def close(self):
        self.pyro.shutdown()
        self._thread.join(timeout=5)
        self.pyro.close()
        self.simulator.close()
        self.hypervisor.stop()
        self.probe.close()
        for name in self.domain_names:
            remove_domain(self.conn, name)


def deadline(seconds):
    return time.monotonic() + seconds


def wait_until(predicate, seconds=5, interval=0.01):
    """Polls predicate until it is true or the deadline passes; returns its last value."""
    end = deadline(seconds)
    while True:
        value = predicate()
        if value or time.monotonic() > end:
            return value
        time.sleep(interval)


@pytest.fixture(scope='session')
def conn():
    configure_pyro()
    start_event_loop()
    connection = libvirt.open(TEST_URI)
    yield connection
    connection.close()


@pytest.fixture
def make_world(conn):
    worlds = []

    def make(**kwargs):
        world = World(conn, **kwargs)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.close()
        print(world.log.text())  # shown by pytest only when the test failed


# --- Rocky 9 (issue 15): under jsonschema 3.2, two schema errors read "... does not have enough
# properties" where 4.x says "should be non-empty". Those two cases pin 4.x's wording; the config
# issue makes the messages library-independent, and then this goes.
JSONSCHEMA_4_WORDING = {'test_bad_config_names_file_and_key[no domains]',
                        'test_bad_config_names_file_and_key[domain without cameras]'}


def pytest_collection_modifyitems(config, items):
    from importlib.metadata import version
    if int(version('jsonschema').split('.')[0]) >= 4:
        return
    for item in items:
        if item.name in JSONSCHEMA_4_WORDING:
            item.add_marker(pytest.mark.skip(reason='jsonschema {} words this error differently from 4.x, '
                                                    'whose wording the test pins'.format(version('jsonschema'))))
