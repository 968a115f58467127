"""Shared fixtures: libvirt's test driver in-process, simulated camds on ephemeral loopback ports and
a camvirtd served over Pyro4 on loopback, called through real Pyro proxies."""

import json
import os
import sys
import uuid

import libvirt
import Pyro4
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rockit.camvirt.daemon.compose import Camvirtd  # noqa: E402
from rockit.camvirt.daemon.service import configure_pyro  # noqa: E402
from rockit.camvirt.daemon.statefile import DaemonMemory  # noqa: E402
from rockit.camvirt.shared.config import parse_config  # noqa: E402
from rockit.camvirt.shared.registry import Registry  # noqa: E402
from rockit.camvirt.virt.eventloop import start_event_loop  # noqa: E402
from testworld.simcamd import ANSWERS, CameraVMSimulator  # noqa: E402
from testworld.support import TEST_URI, ListLog, deadline, define_test_domain, free_port, remove_domain  # noqa: E402


class World:
    """A camvirtd serving on loopback over Pyro4 with domains on the in-process test driver and a
    CameraVMSimulator playing their guests."""

    def __init__(self, conn, domains=2, cameras_per_domain=1, behaviours=None, boot_delay=0.05,
                 control_machines=('LocalHost',), initialize_timeout=5, shutdown_timeout=3,
                 camera_timeout=0.5, create_domains=True, shutdown_repeat_interval=1,
                 libvirt_uri=TEST_URI, extra_config=None, driver_xml=None, memory_path=None):
        """driver_xml: a function (domain names, cameras) -> path of a test driver XML that
        defines those domains and the host's devices; camvirtd's connection to it is then the only
        one that sees that world, so the simulated guests follow that connection. memory_path: a state
        file camvirtd remembers in (none by default)."""
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
        self._own_world = driver_xml is not None
        if self._own_world:
            libvirt_uri = 'test://' + driver_xml(self.domain_names, domains_config)
            self.data['libvirt_uri'] = libvirt_uri
        elif create_domains:
            for name in self.domain_names:
                define_test_domain(conn, name)
        self.log = ListLog()
        # camvirtd as the service composes it, served by the same hardened server.
        memory = DaemonMemory(memory_path, self.config.daemon_name, '<test config>', self.log) if memory_path else None
        self.camvirtd = Camvirtd(self.config, self.log, memory=memory, libvirt_uri=libvirt_uri)
        self.hypervisor = self.camvirtd.hypervisor
        self.probe = self.camvirtd.probe
        self.daemon_object = self.camvirtd.api
        self.pyro = self.camvirtd.pyro
        self.uri = self.camvirtd.uri
        self.camvirtd.start()
        if libvirt_uri == TEST_URI or self._own_world:
            assert self.hypervisor.wait_connected(deadline(5))
        if self._own_world:
            self.conn = self.hypervisor.connection()
        self.simulator = CameraVMSimulator(self.conn, sim_cameras, boot_delay, per_domain=self._own_world)

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
        self.simulator.close()
        self.camvirtd.stop()
        if self._own_world:
            return  # its world went with camvirtd's connection
        for name in self.domain_names:
            remove_domain(self.conn, name)


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

