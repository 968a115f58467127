"""The RPMs the systemd test installs into its container, and rpm run inside that container.

Our packages are built by `make rpm` as for Rocky, but for the container's Python: Debian's own
python3 and its /usr/lib/python3/dist-packages (RPM_PYTHON, RPM_SITELIB), since the container runs
this machine's Debian /usr. Two builds (a version and the next) for an upgrade; and a set laid out as
today's upstream publishes it (upstream-layout.spec beside this file: the same five names and files,
configs not %config, no scriptlets), made from our files, for the move from the original.

rpm runs inside the container (nsenter), on the container's own database (/var/lib/rpm), so the
scriptlets reach the container's systemd. --nodeps: the container's libraries are Debian's
packages, which its empty rpm database does not know.
"""

import glob
import json
import os
import shutil
import subprocess

from .e2e_world import REPO

CONTAINER_SITELIB = '/usr/lib/python3/dist-packages'
CONTAINER_PYTHON = '/usr/bin/python3'
# Upstream's last build (its Version is the UTC build time, as ours).
UPSTREAM_VERSION = '20260527040755'
IN_CONTAINER = '/mnt/camvirt-rpms'
DBPATH = '/var/lib/rpm'
BUILD_TIMEOUT = 300


def run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=BUILD_TIMEOUT, **kwargs)


def names_and_paths(folder):
    found = {}
    for path in sorted(glob.glob(os.path.join(folder, '*.rpm'))):
        name = run(['rpm', '--dbpath', os.path.join(folder, '.db'), '-qp', '--qf', '%{NAME}', path]).stdout
        found[name] = path
    return found


def build_ours(folder, version):
    """{name: path} of our packages at `version`, for the container's Python."""
    out = os.path.join(folder, 'ours-' + version)
    run(['make', '-s', 'rpm', 'VERSION=' + version, 'RPM_PYTHON=' + CONTAINER_PYTHON,
         'RPM_SITELIB=' + CONTAINER_SITELIB, 'RPM_OUT=' + out, 'RPM_TOP=' + os.path.join(folder, 'top-' + version)],
        cwd=REPO)
    return names_and_paths(out)


def upstream_tree(root):
    """The files of upstream's five packages, as its spec installs them (contents from this clone)."""
    def put(path, text, mode=0o644):
        target = os.path.join(root, path.lstrip('/'))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, 'w') as f:
            f.write(text)
        os.chmod(target, mode)

    for name in ('camvirtd', 'camvirt'):
        put('/usr/bin/' + name, '#!/usr/bin/env python3\n"""the original {}"""\n'.format(name), 0o755)
    put('/usr/lib/systemd/system/camvirtd@.service',
        '[Unit]\nDescription=Daemon for camera virtual machine management.\n\n[Service]\nRestart=on-failure\n'
        'Type=simple\nExecStart=/usr/bin/env python3 -u /usr/bin/camvirtd /etc/camvirtd/%i.json\n\n'
        '[Install]\nWantedBy=multi-user.target\n')
    with open(os.path.join(REPO, 'completion', 'camvirt')) as f:
        put('/etc/bash_completion.d/camvirt', f.read())
    # Upstream writes its configs on one line per key: not byte for byte ours.
    for name in ('clasp_cmos', 'clasp_swir', 'sting_das1', 'sting_das2'):
        with open(os.path.join(REPO, 'config', name + '.json')) as f:
            put('/etc/camvirtd/{}.json'.format(name), json.dumps(json.load(f), indent=1) + '\n')
    package = CONTAINER_SITELIB + '/rockit/camvirt/'
    for module in ('__init__', 'config', 'constants'):
        put(package + module + '.py', '"""the original rockit.camvirt {}"""\n'.format(module))
    info = '{}/rockit.camvirt-{}.dist-info/'.format(CONTAINER_SITELIB, UPSTREAM_VERSION)
    put(info + 'METADATA', 'Metadata-Version: 2.1\nName: rockit.camvirt\nVersion: {}\n'.format(UPSTREAM_VERSION))
    put(info + 'top_level.txt', 'rockit\n')


def build_upstream(folder):
    """{name: path} of the five packages laid out as today's upstream."""
    source = os.path.join(folder, 'upstream-source')
    upstream_tree(os.path.join(source, 'root'))
    out = os.path.join(folder, 'upstream')
    top = os.path.join(folder, 'top-upstream')
    spec = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'upstream-layout.spec')
    defines = {'_topdir': top, '_sourcedir': source, '_rpmdir': out, '_version': UPSTREAM_VERSION,
               '_build_name_fmt': '%%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm', '_dbpath': os.path.join(top, 'db'),
               'upstream_sitelib': CONTAINER_SITELIB}
    run(['rpmbuild', '--quiet', '-bb', spec] + [word for k, v in defines.items() for word in ('--define', k + ' ' + v)])
    return names_and_paths(out)


def next_version(version):
    """A version one second later (YYYYMMDDHHMMSS sorts as a number; 59 + 1 is still larger)."""
    return str(int(version) + 1)


class PackageSets:
    """Our packages at `version` and the next, and upstream's, all under one folder that the container
    sees at IN_CONTAINER."""

    def __init__(self, folder, version):
        self.folder = str(folder)
        self.version = version
        self.next_version = next_version(version)
        self.ours = build_ours(self.folder, version)
        self.ours_next = build_ours(self.folder, self.next_version)
        self.upstream = build_upstream(self.folder)
        shutil.rmtree(os.path.join(self.folder, '.db'), ignore_errors=True)

    def inside(self, paths):
        """The container's paths of these packages."""
        return [os.path.join(IN_CONTAINER, os.path.relpath(p, self.folder)) for p in paths]


def rpm(container, *args, check=True, timeout=120):
    """rpm inside the container on its own database; the CompletedProcess."""
    return container.run('rpm', '--dbpath', DBPATH, *args, check=check, timeout=timeout)


def installed(container):
    """{name: version} of what the container's rpm database holds."""
    out = rpm(container, '-qa', '--qf', '%{NAME} %{VERSION}\\n').stdout
    return dict(line.split() for line in out.splitlines() if line.strip())
