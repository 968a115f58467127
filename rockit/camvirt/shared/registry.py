"""Where each named daemon and machine of the rockit network lives, and where that fact came from.

Layers, each overlaying the ones before it name by name (a later layer wins where two define a name):
1. "shipped": the registry shipped with this package (data/registry.json), which knows every name the
   shipped site configs use, of the seed's generation and of today's;
2. "rockit.common": its `daemons` and `IP`, where that package is installed (rockitcommon.py);
3. operator files: every *.json in /etc/camvirtd/registry.d/ in name order, or the files listed
   (':'-separated) in the CAMVIRTD_REGISTRY environment variable, which replaces that folder.
Each file is checked in full (registryfile.py); a daemon's host must then be an IP address or a
machine some layer names.
"""

import glob
import ipaddress
import os
from collections import namedtuple

from .registryfile import RegistryError, capped, read_registry_file, shown
from .rockitcommon import read_rockit_common

__all__ = ['DaemonAddress', 'Registry', 'RegistryError', 'load_registry', 'operator_registry_files',
           'REGISTRY_DIR', 'REGISTRY_ENV', 'SHIPPED', 'SHIPPED_REGISTRY']

REGISTRY_DIR = '/etc/camvirtd/registry.d'
REGISTRY_ENV = 'CAMVIRTD_REGISTRY'
SHIPPED = 'shipped'
SHIPPED_REGISTRY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data', 'registry.json')
# The source of entries given in code (tests, benchmarks) rather than by a layer.
GIVEN = 'given'


class DaemonAddress(namedtuple('DaemonAddress', ['name', 'object_id', 'host', 'port'])):
    """A daemon's Pyro address; host is an IP address."""

    @property
    def uri(self):
        # An IPv6 address goes in brackets, as Pyro4's URI parser needs it.
        host = '[{}]'.format(self.host) if ':' in self.host else self.host
        return 'PYRO:{}@{}:{}'.format(self.object_id, host, self.port)


class Registry:
    """Resolves daemon names to Pyro addresses and machine names to IPs, and says which layer
    (SHIPPED, 'rockit.common' or an operator file's path) each name came from."""

    def __init__(self, daemons=None, machines=None):
        # daemons: name -> (object_id, host machine name or IP, port); hosts resolve lazily so that
        # an override of a machine's IP applies to every daemon on it.
        self._daemons = {}
        self._machines = {}
        self._daemon_sources = {}
        self._machine_sources = {}
        # One line for each entry a layer offered and camvirtd left out (rockit.common's).
        self.warnings = []
        self.merge(daemons or {}, machines or {})

    def merge(self, daemons, machines, source=GIVEN):
        self._daemons.update(daemons)
        self._machines.update(machines)
        self._daemon_sources.update(dict.fromkeys(daemons, source))
        self._machine_sources.update(dict.fromkeys(machines, source))

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

    def daemon_source(self, name):
        return self._daemon_sources[name]

    def machine_source(self, name):
        return self._machine_sources[name]

    def host_machine(self, name):
        """The machine name daemon `name` lives on, or None when its host is an IP address."""
        host = self._daemons[name][1]
        return host if host in self._machines else None

    def describe_daemon(self, name):
        """Where daemon `name`'s address came from, e.g. 'rockit.common' or
        'shipped; host STINGDAS1 from /etc/camvirtd/registry.d/site.json'."""
        source = self._daemon_sources[name]
        machine = self.host_machine(name)
        if machine is None or self._machine_sources[machine] == source:
            return source
        return '{}; host {} from {}'.format(source, machine, self._machine_sources[machine])

    def sources_for(self, daemons, machines):
        """{'daemons': {name: source}, 'machines': {name: source}} for the daemons named, the machines
        they live on and the machines named: what `camvirt config --json` shows."""
        daemons = [d for d in dict.fromkeys(daemons) if d in self._daemons]
        machines = list(machines) + [self.host_machine(d) for d in daemons if self.host_machine(d)]
        return {'daemons': {d: self._daemon_sources[d] for d in daemons},
                'machines': {m: self._machine_sources[m] for m in dict.fromkeys(machines) if m in self._machines}}

    def host_problems(self):
        """One line for each daemon whose host is neither an IP address nor a known machine, naming the
        layer that placed it there."""
        by_source = {}
        for name in sorted(self._daemons):
            host = self._daemons[name][1]
            if host not in self._machines and not _is_ip(host):
                source = self._daemon_sources[name]
                by_source.setdefault(source, []).append(
                    '{}: daemons.{}.host: unknown machine name {} (no registry layer names it)'.format(
                        source, name, shown(host)))
        return [line for source, lines in by_source.items() for line in capped(lines, source)]


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def operator_registry_files():
    listed = os.environ.get(REGISTRY_ENV)
    if listed is not None:
        return [p for p in listed.split(':') if p]
    return sorted(glob.glob(os.path.join(REGISTRY_DIR, '*.json')))


def load_registry():
    """The registry this host uses (see the module docstring); RegistryError with one line per
    problem, each naming the file and the key."""
    registry = Registry()
    registry.merge(*read_registry_file(SHIPPED_REGISTRY), source=SHIPPED)
    common = read_rockit_common()
    if common is not None:
        registry.merge(common.daemons, common.machines, source='rockit.common')
        registry.warnings.extend(common.warnings)
    problems = []
    for path in operator_registry_files():
        try:
            registry.merge(*read_registry_file(path), source=path)
        except RegistryError as e:
            problems.extend(e.problems)  # every bad file is reported, not just the first
    if not problems:  # a host named only in a broken file would report that file's problems twice
        problems = registry.host_problems()
    if problems:
        raise RegistryError(problems)
    return registry
