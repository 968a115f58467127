"""rockit.common's registry, where that package is installed, as a registry layer.

Its shape (late 2026): `rockit.common.IP` is a class whose attributes are machine name -> address;
`rockit.common.daemons` a module whose module-level PyroDaemon objects (`name` = Pyro object id,
`host` = an address, `port`) are the daemons, named by their attribute names. Entries camvirtd cannot
use are left out with a warning rather than stopping it: a DAS host does not choose what a
python3-rockit-common update brings, and most of its names are not camvirtd's.
"""

import importlib
import ipaddress

from .registryfile import daemon_entry, ip_problem, name_problem

SOURCE = 'rockit.common'


class CommonLayer:
    """What rockit.common contributes: daemons name -> (object_id, host, port), machines name -> IP,
    and one warning line for each entry left out."""

    def __init__(self):
        self.daemons = {}
        self.machines = {}
        self.warnings = []


def _import_rockit_common():
    """(IP, daemons module) of rockit.common; None when it is not installed. A rockit.common that is
    installed but fails to import raises ImportError with the reason."""
    try:
        common = importlib.import_module('rockit.common')
        daemons = importlib.import_module('rockit.common.daemons')
    except ModuleNotFoundError as e:
        if e.name in ('rockit', 'rockit.common'):
            return None
        raise ImportError('{}: rockit.common needs it'.format(e)) from None
    except Exception as e:  # its import runs code we do not own
        raise ImportError('{}: {}'.format(type(e).__name__, e)) from None
    ip = getattr(common, 'IP', None)
    if ip is None:
        raise ImportError('it has no IP class')
    return ip, daemons


def _machines(ip_class, layer):
    for name, value in vars(ip_class).items():
        if name.startswith('_') or not isinstance(value, str):
            continue
        ip, problem = ip_problem(value)
        problem = name_problem(name, 'machine') or problem
        if problem:
            layer.warnings.append('{}: IP.{}: {}; left out'.format(SOURCE, name, problem))
        else:
            layer.machines[name] = ip


def _looks_like_daemon(value):
    return not isinstance(value, type) and all(hasattr(value, a) for a in ('name', 'host', 'port'))


def _daemons(module, layer):
    # A daemon's host is an address there; where exactly one machine has it, the daemon is placed on
    # that machine, so that an operator file moving the machine moves its daemons too.
    by_ip = {}
    for machine, ip in layer.machines.items():
        by_ip.setdefault(ip, []).append(machine)
    for name, value in vars(module).items():
        if name.startswith('_') or not _looks_like_daemon(value):
            continue
        entry = {'object_id': value.name, 'host': value.host, 'port': value.port}
        address, problems = daemon_entry(entry)
        if not problems and ip_problem(value.host)[1]:
            problems = [('host', ip_problem(value.host)[1])]
        problem = name_problem(name, 'daemon') or '; '.join('{} {}'.format(k, text) for k, text in problems)
        if problem:
            layer.warnings.append('{}: daemons.{}: {}; left out'.format(SOURCE, name, problem))
            continue
        object_id, host, port = address
        machines = by_ip.get(_normalised(host), [])
        layer.daemons[name] = (object_id, machines[0] if len(machines) == 1 else host, port)


def _normalised(host):
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def read_rockit_common():
    """rockit.common's layer, or None when it is not installed. One that is installed but cannot be
    imported gives an empty layer with a warning: camvirtd then runs on the other layers."""
    layer = CommonLayer()
    try:
        found = _import_rockit_common()
    except ImportError as e:
        layer.warnings.append('{}: installed but cannot be imported ({}); its names are not used'.format(
            SOURCE, str(e).splitlines()[0][:200] if str(e) else 'ImportError'))
        return layer
    if found is None:
        return None
    ip_class, module = found
    _machines(ip_class, layer)
    _daemons(module, layer)
    return layer
