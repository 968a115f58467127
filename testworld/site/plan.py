"""What the site world is made of: its hosts, their addresses, the registry and the camvirtd configs.

A site like SuperWASP/STING: a TCS host (opsd), two DAS hosts each running camvirtd and two camera
VMs on a bridge of its own, and a dashboard host. Addresses come from 198.18.0.0/15 (reserved for
benchmarking), never the sites' real 10.x ones; the namespaces keep them apart from every other world,
so each world uses the same addresses and the real site's ports.
"""

import collections
import json
import os

# Site network 198.18.0.0/24; each DAS host's camera network 198.18.N.0/24.
SITE_HOSTS = collections.OrderedDict([
    ('tcs', '198.18.0.10'), ('das1', '198.18.0.11'), ('das2', '198.18.0.12'), ('dashboard', '198.18.0.20')])
CAMERA_NETS = collections.OrderedDict([
    ('das1', ('198.18.1.1', collections.OrderedDict([('cam1', '198.18.1.11'), ('cam2', '198.18.1.12')]))),
    ('das2', ('198.18.2.1', collections.OrderedDict([('cam3', '198.18.2.13'), ('cam4', '198.18.2.14')]))),
])
MACHINES = {'tcs': 'TestSiteTCS', 'das1': 'TestSiteDAS1', 'das2': 'TestSiteDAS2',
            'dashboard': 'TestSiteDashboard', 'cam1': 'TestSiteCameraVM1', 'cam2': 'TestSiteCameraVM2',
            'cam3': 'TestSiteCameraVM3', 'cam4': 'TestSiteCameraVM4'}
CAMVIRTD_PORTS = {'das1': 9012, 'das2': 9013}
CAMD_PORTS = {'cam1': 9040, 'cam2': 9041, 'cam3': 9042, 'cam4': 9043}
LOG_PORT = 9016  # on the TCS host, where nothing listens: a log daemon that is down
CONTROL_HOSTS = ('tcs', 'das1', 'das2')

SITE_FILE = 'site.json'
REGISTRY_FILE = 'registry.json'


def camvirtd_daemon(das):
    return 'testsite_camvirt_' + das


def camd_daemon(cam):
    return 'testsite_' + cam


def registry_data():
    """The site registry, in the shape of rockit-registry.json."""
    machines = {MACHINES[role]: address for role, address in SITE_HOSTS.items()}
    daemons = {'testsite_log': {'object_id': 'testsite_log_daemon', 'host': MACHINES['tcs'], 'port': LOG_PORT}}
    for das, (_das_address, cameras) in CAMERA_NETS.items():
        daemons[camvirtd_daemon(das)] = {'object_id': 'testsite_camvirt_daemon_' + das, 'host': MACHINES[das],
                                         'port': CAMVIRTD_PORTS[das]}
        for cam, address in cameras.items():
            machines[MACHINES[cam]] = address
            daemons[camd_daemon(cam)] = {'object_id': 'testsite_camera_daemon_' + cam[3:],
                                         'host': MACHINES[cam], 'port': CAMD_PORTS[cam]}
    return {'_about': 'Written by camvirt-site: the test site world\'s own names (198.18.0.0/15, '
                      'inside its network namespaces only).',
            'daemons': daemons, 'machines': machines}


def libvirt_folder(folder, das):
    return os.path.join(folder, das)


def config_path(folder, das):
    return os.path.join(folder, das + '.json')


def config_data(folder, das, camera_timeout, initialize_timeout, qemu=False):
    """A DAS host's camvirtd config, as the site's (sting_das1 ...) with the world's libvirtd (its
    test driver, or with qemu its QEMU driver)."""
    from ..privatelibvirtd import sandbox_uri
    return {
        'daemon': camvirtd_daemon(das), 'log_name': 'camvirtd@testsite_' + das,
        'control_machines': [MACHINES[host] for host in CONTROL_HOSTS],
        'initialize_timeout': initialize_timeout, 'shutdown_timeout': 30,
        'libvirt_uri': sandbox_uri(libvirt_folder(folder, das), qemu=qemu), 'log_daemon': 'testsite_log',
        'camera_timeout': camera_timeout, 'shutdown_repeat_interval': 2,
        'domains': {cam: {cam: camd_daemon(cam)} for cam in CAMERA_NETS[das][1]},
    }


def site_description(folder, prefix, qemu=False):
    """What callers and tests need to find their way: site.json."""
    from ..privatelibvirtd import sandbox_uri
    from .net import ns_name
    registry = registry_data()
    hosts = {role: {'ns': ns_name(prefix, role), 'address': address, 'machine': MACHINES[role]}
             for role, address in SITE_HOSTS.items()}
    camvirtds, cameras = {}, {}
    for das, (das_address, das_cameras) in CAMERA_NETS.items():
        daemon = registry['daemons'][camvirtd_daemon(das)]
        camvirtds[das] = {'uri': 'PYRO:{}@{}:{}'.format(daemon['object_id'], SITE_HOSTS[das], daemon['port']),
                          'config': config_path(folder, das), 'camera_address': das_address,
                          'libvirt_folder': libvirt_folder(folder, das), 'cameras': list(das_cameras),
                          'libvirt_uri': sandbox_uri(libvirt_folder(folder, das), qemu=qemu)}
        for cam, address in das_cameras.items():
            camd = registry['daemons'][camd_daemon(cam)]
            cameras[cam] = {'ns': ns_name(prefix, cam), 'address': address, 'das': das,
                            'port': CAMD_PORTS[cam],
                            'camd_uri': 'PYRO:{}@{}:{}'.format(camd['object_id'], address, CAMD_PORTS[cam])}
    return {'prefix': prefix, 'folder': folder, 'registry': os.path.join(folder, REGISTRY_FILE),
            'hosts': hosts, 'camvirtd': camvirtds, 'cameras': cameras}


def write_json(path, data):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2)
        f.write('\n')
    os.replace(tmp, path)


def read_site(path):
    with open(path) as f:
        return json.load(f)
