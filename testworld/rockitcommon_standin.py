"""A stand-in for today's rockit.common (late 2026, see ../shared/reference/ROCKIT.md), written by the
tests into a folder of their own: the real package's shape (a portion of the `rockit` namespace package,
an `IP` class of machine name -> address, a `daemons` module of PyroDaemon objects whose hosts are
addresses) with its STING and split-CLASP names, no SuperWASP ones, and a few daemons that are not
camvirtd's. Python code that should see it runs as a process with `env_with(folder)`."""

import json
import os
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Today's facts (ROCKIT.md): machine -> IP, daemon -> (object id, machine, port).
TODAY_MACHINES = {
    'LocalHost': '127.0.0.1', 'GOTOServer': '10.2.6.100',
    'STINGTCS': '10.2.6.160', 'STINGDAS1': '10.2.6.173', 'STINGDAS2': '10.2.6.175',
    'STINGCameraVM1': '10.2.6.165', 'STINGCameraVM2': '10.2.6.166', 'STINGCameraVM3': '10.2.6.167',
    'STINGCameraVM4': '10.2.6.168',
    'CLASPTCS': '10.2.6.181', 'CLASPCMOS': '10.2.6.182', 'CLASPSWIR': '10.2.6.187',
    'CLASPCMOSVM': '10.2.6.185', 'CLASPSWIRVM': '10.2.6.186',
}
TODAY_DAEMONS = {
    'sting_camvirt_das1': ('sting_camvirt_daemon_das1', 'STINGDAS1', 9012),
    'sting_camvirt_das2': ('sting_camvirt_daemon_das2', 'STINGDAS2', 9013),
    'sting_cam1': ('sting_camera_daemon_1', 'STINGCameraVM1', 9040),
    'sting_cam2': ('sting_camera_daemon_2', 'STINGCameraVM2', 9041),
    'sting_cam3': ('sting_camera_daemon_3', 'STINGCameraVM3', 9042),
    'sting_cam4': ('sting_camera_daemon_4', 'STINGCameraVM4', 9043),
    'clasp_camvirt_cmos': ('clasp_camvirt_cmos_daemon', 'CLASPCMOS', 9040),
    'clasp_camvirt_swir': ('clasp_camvirt_swir_daemon', 'CLASPSWIR', 9040),
    'clasp_camera_cmos': ('clasp_camera_cmos_daemon', 'CLASPCMOSVM', 9037),
    'clasp_camera_swir': ('clasp_camera_swir_daemon', 'CLASPSWIRVM', 9038),
    'observatory_log': ('observatory_log_daemon', 'GOTOServer', 9016),
}
# Not camvirtd's, but there in the real package: other daemons, one object id on two hosts.
_OTHERS = [('sting_telescope', 'sting_telescope_daemon', 'STINGTCS', 9003),
           ('sting_operations', 'sting_operations_daemon', 'STINGTCS', 9015),
           ('clasp_operations', 'clasp_operations_daemon', 'CLASPTCS', 9030),
           ('localhost_test', 'localhost_test_daemon', 'LocalHost', 9000),
           ('goto_dome1_gtecs_mnt', 'mnt', 'GOTOControl1', 9001),
           ('goto_dome2_gtecs_mnt', 'mnt', 'GOTOControl2', 9001)]
_OTHER_MACHINES = {'GOTOControl1': '10.2.6.20', 'GOTOControl2': '10.2.6.50'}

_INIT = '''\
"""rockit common imports (a test stand-in of the real package's shape)"""
import jsonschema  # noqa: F401  the real package depends on it (and on Pyro4 and rich)
from . import daemons
from .ip import IP
'''

_DAEMONS_HEAD = '''\
"""Directory of Pyro daemons"""
import Pyro4

from .ip import IP


class PyroDaemon:
    """Encodes a reference to a remote Pyro4 daemon"""
    def __init__(self, name, host, port, default_timeout=5, default_retries=0):
        self.name = name
        self.host = host
        self.port = port
        self.default_timeout = default_timeout
        self.default_retries = default_retries
        self.uri = 'PYRO:' + name + '@' + host + ':' + str(port)

    def connect(self, timeout=None):
        proxy = Pyro4.Proxy(self.uri)
        proxy._pyroTimeout = self.default_timeout if timeout is None else timeout
        return proxy


'''


def write_rockit_common(folder, machines=None, daemons=None, extra_daemons_source='', init_source=None):
    """Writes the stand-in under `folder` (which then goes on PYTHONPATH) and returns `folder`.
    `machines` / `daemons` change or add entries of today's ({name: IP}, {name: (object id, machine,
    port)}); `extra_daemons_source` is appended to daemons.py as it is."""
    package = os.path.join(str(folder), 'rockit', 'common')
    os.makedirs(package, exist_ok=True)
    all_machines = dict(TODAY_MACHINES)
    all_machines.update(_OTHER_MACHINES)
    all_machines.update(machines or {})
    all_daemons = {name: entry for name, *entry in _OTHERS}
    all_daemons.update(TODAY_DAEMONS)
    all_daemons.update(daemons or {})
    with open(os.path.join(package, '__init__.py'), 'w') as f:
        f.write(_INIT if init_source is None else init_source)
    with open(os.path.join(package, 'ip.py'), 'w') as f:
        f.write('"""Directory of IP addresses"""\n\n\nclass IP:\n    """List of computer / device IPs"""\n')
        f.writelines('    {} = {!r}\n'.format(name, ip) for name, ip in all_machines.items())
    with open(os.path.join(package, 'daemons.py'), 'w') as f:
        f.write(_DAEMONS_HEAD)
        f.writelines('{} = PyroDaemon({!r}, IP.{}, {!r})\n'.format(name, object_id, machine, port)
                     for name, (object_id, machine, port) in all_daemons.items())
        f.write(textwrap.dedent(extra_daemons_source))
    return str(folder)


def env_with(folder, **extra):
    """The environment of a process that sees the stand-in in `folder` (None: no rockit.common)."""
    path = REPO if folder is None else '{}:{}'.format(REPO, folder)
    env = dict(os.environ, PYTHONPATH=path, CAMVIRTD_REGISTRY='')
    env.update(extra)
    return env


_LOAD_ALL = textwrap.dedent('''
    import json, sys
    from rockit.camvirt.shared.config import ConfigError, load_config
    from rockit.camvirt.shared.registry import load_registry
    registry = load_registry()
    out = {'warnings': registry.warnings, 'configs': {}}
    for path in sys.argv[1:]:
        try:
            c = load_config(path, registry)
        except ConfigError as e:
            out['configs'][path] = {'error': str(e)}
            continue
        names = [c.daemon_name] + [cam.daemon_name for cam in c.cameras.values()]
        out['configs'][path] = {
            'server': c.daemon.uri, 'cameras': {cam.id: cam.address.uri for cam in c.cameras.values()},
            'control_machines': c.control_machines,
            'sources': {n: registry.describe_daemon(n) for n in names}}
    print(json.dumps(out))
''')


def load_in_a_process(folder, paths, **env):
    """{'warnings': [...], 'configs': {path: {server, cameras, control_machines, sources} or {error}}},
    as a process that sees the stand-in in `folder` (None: none) loads each config."""
    result = subprocess.run([sys.executable, '-c', _LOAD_ALL] + list(paths), env=env_with(folder, **env),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
