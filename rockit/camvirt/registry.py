"""Where each named daemon and machine of the rockit network lives.

Layers, later ones overriding earlier ones:
1. rockit.common's `daemons` and `IP` when that package is installed, else the rockit registry shipped
   with this package (data/registry.json);
2. operator files: every *.json in /etc/camvirtd/registry.d/, or the files listed (':'-separated) in
   the CAMVIRTD_REGISTRY environment variable, which replaces that folder.
Operator files have the shape of data/registry.json:
    {"daemons": {"name": {"object_id": "...", "host": "MachineName or IP", "port": 9000}},
     "machines": {"MachineName": "10.0.0.1"}}
"""

import glob
import ipaddress
import json
import os
from collections import namedtuple

REGISTRY_DIR = '/etc/camvirtd/registry.d'
REGISTRY_ENV = 'CAMVIRTD_REGISTRY'
_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')


class RegistryError(Exception):
    """A registry file that cannot be read; the message names the file."""


class DaemonAddress(namedtuple('DaemonAddress', ['name', 'object_id', 'host', 'port'])):
    """A daemon's Pyro address; host is an IP address."""

    @property
    def uri(self):
        return 'PYRO:{}@{}:{}'.format(self.object_id, self.host, self.port)


class Registry:
    """Resolves daemon names to Pyro addresses and machine names to IPs."""

    def __init__(self, daemons=None, machines=None):
        # daemons: name -> (object_id, host machine name or IP, port); hosts resolve lazily so that
        # an override of a machine's IP applies to every daemon on it.
        self._daemons = dict(daemons or {})
        self._machines = dict(machines or {})

    def merge(self, daemons, machines):
        self._daemons.update(daemons)
        self._machines.update(machines)

    def has_daemon(self, name):
        return name in self._daemons

    def has_machine(self, name):
        return name in self._machines

    def machine_ip(self, name):
        return self._machines[name]

    def daemon(self, name):
        object_id, host, port = self._daemons[name]
        return DaemonAddress(name, object_id, self._machines.get(host, host), port)

    def daemon_names(self):
        return sorted(self._daemons)


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def parse_registry_json(data, path):
    """(daemons, machines) from a registry file's parsed JSON; RegistryError names what is wrong."""
    if not isinstance(data, dict):
        raise RegistryError('{}: a registry file must hold a JSON object'.format(path))
    daemons, machines = {}, {}
    for name, ip in data.get('machines', {}).items():
        if not isinstance(ip, str) or not _is_ip(ip):
            raise RegistryError('{}: machines.{}: {!r} is not an IP address'.format(path, name, ip))
        machines[name] = ip
    for name, entry in data.get('daemons', {}).items():
        try:
            daemons[name] = (str(entry['object_id']), str(entry['host']), int(entry['port']))
        except (KeyError, TypeError, ValueError):
            raise RegistryError('{}: daemons.{}: needs "object_id", "host" and a numeric "port"'
                                .format(path, name)) from None
    return daemons, machines


def read_registry_file(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise RegistryError('{}: cannot read registry file: {}'.format(path, e.strerror)) from None
    except ValueError as e:
        raise RegistryError('{}: not valid JSON: {}'.format(path, e)) from None
    return parse_registry_json(data, path)


def _from_rockit_common():
    """rockit.common's registry as (daemons, machines), or None when it is not installed."""
    try:
        from rockit.common import IP, daemons  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    machines = {k: v for k, v in vars(IP).items() if not k.startswith('_') and isinstance(v, str)}
    found = {}
    for name, value in vars(daemons).items():
        if all(hasattr(value, a) for a in ('name', 'host', 'port', 'uri')):
            found[name] = (value.name, value.host, int(value.port))
    return found, machines


def operator_registry_files():
    listed = os.environ.get(REGISTRY_ENV)
    if listed is not None:
        return [p for p in listed.split(':') if p]
    return sorted(glob.glob(os.path.join(REGISTRY_DIR, '*.json')))


def load_registry():
    """The registry this host uses (see the module docstring); raises RegistryError."""
    registry = Registry()
    base = _from_rockit_common()
    if base is None:
        base = read_registry_file(os.path.join(_DATA_DIR, 'registry.json'))
    registry.merge(*base)
    for path in operator_registry_files():
        registry.merge(*read_registry_file(path))
    return registry
