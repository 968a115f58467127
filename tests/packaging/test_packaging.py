"""Packaging as an operator meets it: the five RPMs, the systemd unit, bash completion, make install,
and camvirtd telling systemd when it is ready."""

import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile

import pytest

from testworld.rockitcommon_standin import write_rockit_common
from testworld.support import REPO, write_one_camera_files

PACKAGES = {
    'rockit-camvirt-server': (['/usr/bin/camvirtd', '/usr/lib/systemd/system/camvirtd@.service',
                               '/usr/lib/sysusers.d/camvirtd.conf', '/usr/share/polkit-1/rules.d/50-camvirtd.rules',
                               '/usr/share/man/man8/camvirtd.8.gz', '/usr/share/man/man5/camvirtd.json.5.gz'],
                              {'python3-rockit-camvirt', 'python3-libvirt', '/usr/bin/python3', 'shadow-utils'}),
    'rockit-camvirt-client': (['/usr/bin/camvirt', '/etc/bash_completion.d/camvirt',
                               '/usr/share/man/man1/camvirt.1.gz'],
                              {'python3-rockit-camvirt', 'python3-rich', '/usr/bin/python3'}),
    # Upstream's names, each holding what upstream's package of that name held: data-clasp today's
    # CLASP configs beside the seed's; data-sting today's STING configs; data-superwasp the seed's.
    'rockit-camvirt-data-clasp': (['/etc/camvirtd/clasp_cmos.json', '/etc/camvirtd/clasp_swir.json',
                                   '/etc/camvirtd/clasp_das.json', '/etc/camvirtd/clasp_tcs.json'], set()),
    'rockit-camvirt-data-sting': (['/etc/camvirtd/sting_das1.json', '/etc/camvirtd/sting_das2.json'], set()),
    'rockit-camvirt-data-superwasp': (['/etc/camvirtd/superwasp_das1.json', '/etc/camvirtd/superwasp_das2.json'],
                                      set()),
    'python3-rockit-camvirt': (None, {'python3-Pyro4', 'python3-jsonschema'}),
}
# Upstream's last build (rockit-astro/camvirtd "Package for Rocky 10", 2026-05-27 04:07:55 UTC).
UPSTREAM_LAST_VERSION = '20260527040755-1.el9'


def run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, check=True, **kwargs)


def rpm_query(*args):
    # A database of our own: querying a package file must leave nothing in the host's (or root's) rpmdb.
    return run(['rpm', '--dbpath', RPM_DB] + list(args)).stdout


RPM_DB = None
# The Rocky releases and their Pythons.
EL_PYTHONS = {'9': '3.9', '10': '3.12'}


def path_without_apt(folder):
    """A PATH of one folder holding every program of this PATH but apt's and dpkg's, as on Rocky."""
    folder.mkdir(exist_ok=True)
    for directory in os.environ['PATH'].split(':'):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            program = os.path.join(directory, name)
            if name.startswith(('apt', 'dpkg')) or not os.access(program, os.X_OK) or (folder / name).exists():
                continue
            os.symlink(program, str(folder / name))
    return str(folder)


def build_rpms(tmp_path_factory, el):
    """{package name: path} of the RPMs `make rpm EL=el` builds, with no apt on the PATH."""
    global RPM_DB
    out = tmp_path_factory.mktemp('rpms-el' + el)
    RPM_DB = str(out / 'top' / 'db')
    env = dict(os.environ, PATH=path_without_apt(out / 'bin'))
    assert shutil.which('apt-get', path=env['PATH']) is None and shutil.which('rpmbuild', path=env['PATH'])
    run(['make', '-s', 'rpm', 'EL=' + el, 'RPM_OUT={}'.format(out / 'out'), 'RPM_TOP={}'.format(out / 'top')],
        cwd=REPO, env=env)
    found = {}
    for path in glob.glob(str(out / 'out' / '*.rpm')):
        found[rpm_query('-qp', '--qf', '%{NAME}', path)] = path
    return found


@pytest.fixture(scope='module')
def rpms(tmp_path_factory):
    return build_rpms(tmp_path_factory, '9')


def target_python(version):
    """The interpreter `make rpm` builds with for a release whose Python is `version`, or None."""
    found = glob.glob(os.path.expanduser('~/.pyenv/versions/{}.*/bin/python{}'.format(version, version)))
    return found[0] if found else shutil.which('python' + version)


@pytest.fixture(scope='module')
def rpms_el10(tmp_path_factory):
    if target_python(EL_PYTHONS['10']) is None:
        pytest.skip('no Python {} here (pyenv install {}): cannot build for Rocky 10'.format(
            EL_PYTHONS['10'], EL_PYTHONS['10']))
    return build_rpms(tmp_path_factory, '10')


def test_packages_with_their_files_and_requires(rpms):
    assert set(rpms) == set(PACKAGES)
    for name, (files, requires) in PACKAGES.items():
        listed = rpm_query('-qlp', rpms[name]).split()
        needed = {line.split()[0] for line in rpm_query('-qp', '--requires', rpms[name]).splitlines()
                  if not line.startswith(('rpmlib(', 'config(', 'python(abi)', '/bin/sh'))}
        assert needed == requires, name
        if files is not None:
            assert sorted(listed) == sorted(files), name
    python_files = rpm_query('-qlp', rpms['python3-rockit-camvirt']).split()
    sitelib = '/usr/lib/python3.9/site-packages'
    assert {os.path.dirname(p) for p in python_files if p.endswith('.dist-info')} == {sitelib}
    assert not any(path.endswith('rockit/__init__.py') for path in python_files)  # a namespace package
    # Every module and data file of the source tree, however deep (the recipe installs the wheel).
    sources = subprocess.run(['git', 'ls-files', 'rockit/camvirt'], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    assert sources and {sitelib + '/' + p for p in sources} <= set(python_files)
    assert '/etc/camvirtd/registry.d' in python_files


def test_data_sting_replaces_only_the_data_superwasp_that_held_its_files(rpms):
    obsoletes = rpm_query('-qp', '--obsoletes', rpms['rockit-camvirt-data-sting']).split()
    assert obsoletes[:2] == ['rockit-camvirt-data-superwasp', '<']
    bound = obsoletes[2]
    version = rpm_query('-qp', '--qf', '%{VERSION}-%{RELEASE}', rpms['rockit-camvirt-data-superwasp'])
    assert vercmp(version, bound) > 0  # today's data-superwasp is not obsoleted
    for name, path in rpms.items():
        if name != 'rockit-camvirt-data-sting':
            assert rpm_query('-qp', '--obsoletes', path).strip() == '', name


def test_scriptlets_use_rockys_systemd_macros_where_defined_and_name_the_instances(tmp_path):
    """Built as on Rocky (stand-ins for systemd-rpm-macros' three macros): the scriptlets call them,
    and still stop the template's instances on erase and restart them on upgrade themselves."""
    macros = {'systemd_post()': 'ROCKY_POST %*', 'systemd_preun()': 'ROCKY_PREUN %*',
              'systemd_postun_with_restart()': 'ROCKY_POSTUN %*'}
    defines = {'_topdir': str(tmp_path / 'top'), '_sourcedir': REPO, '_rpmdir': str(tmp_path / 'out'),
               '_version': '20260102030405', '_dbpath': str(tmp_path / 'db'), '__python3': '/usr/bin/python3',
               'python3_sitelib': '/usr/lib/python3/dist-packages'}
    defines.update(macros)
    run(['rpmbuild', '--quiet', '-bb', os.path.join(REPO, 'rockit-camvirt.spec')]
        + [word for k, v in defines.items() for word in ('--define', '{} {}'.format(k, v))])
    server = glob.glob(str(tmp_path / 'out' / '*' / 'rockit-camvirt-server-*.rpm'))[0]
    scripts = run(['rpm', '--dbpath', str(tmp_path / 'db'), '-qp', '--scripts', server]).stdout
    for call in ('ROCKY_POST camvirtd@.service', 'ROCKY_PREUN camvirtd@.service', 'ROCKY_POSTUN camvirtd@.service'):
        assert call in scripts
    assert "systemctl stop 'camvirtd@*.service'" in scripts and "systemctl try-restart 'camvirtd@*.service'" in scripts
    assert 'preset' not in scripts  # the fallback is not used where the macro is


def vercmp(a, b):
    """rpm's own comparison of two versions: 1, 0 or -1."""
    return int(run(['rpm', '--eval', '%{{lua: print(rpm.vercmp("{}", "{}"))}}'.format(a, b)]).stdout)


def test_versions_sort_after_upstreams_and_release_names_the_dist(rpms):
    for name, path in rpms.items():
        release = rpm_query('-qp', '--qf', '%{RELEASE}', path)
        assert release == '1', name  # 1%{?dist}: "1.el9" on Rocky 9, "1" where no dist is defined
        assert vercmp(rpm_query('-qp', '--qf', '%{VERSION}-%{RELEASE}', path), UPSTREAM_LAST_VERSION) > 0, name
    with open(os.path.join(REPO, 'rockit-camvirt.spec')) as f:
        assert re.search(r'^Release:\s+1%\{\?dist\}$', f.read(), re.M)


def test_python_package_has_its_metadata(rpms, tmp_path):
    unpack(rpms['python3-rockit-camvirt'], tmp_path)
    sitelib = glob.glob(str(tmp_path / 'usr/lib/python3*/site-packages'))[0]
    script = 'import importlib.metadata as m; print(m.version("rockit.camvirt"), m.requires("rockit.camvirt"))'
    out = run([sys.executable, '-I', '-c', 'import sys; sys.path.insert(0, sys.argv[1]); ' + script, sitelib],
              cwd=str(tmp_path)).stdout
    version = rpm_query('-qp', '--qf', '%{VERSION}', rpms['python3-rockit-camvirt'])
    assert out.split()[0] == version and 'Pyro4' in out and 'jsonschema' in out, out
    installer = glob.glob(sitelib + '/rockit*camvirt-*.dist-info/INSTALLER')
    assert [open(p).read().strip() for p in installer] == ['rpm']


def test_each_command_has_its_manual_page_and_the_unit_names_it(rpms, tmp_path):
    for package, page in (('rockit-camvirt-server', 'man8/camvirtd.8.gz'), ('rockit-camvirt-server',
                          'man5/camvirtd.json.5.gz'), ('rockit-camvirt-client', 'man1/camvirt.1.gz')):
        assert '/usr/share/man/' + page in rpm_query('-qlp', rpms[package]).split(), page
    unpack(rpms['rockit-camvirt-server'], tmp_path)
    rendered = run(['man', '-l', str(tmp_path / 'usr/share/man/man8/camvirtd.8.gz')],
                   env=dict(os.environ, MANWIDTH='100')).stdout
    assert '--state-dir' in rendered and 'camvirtd.json(5)' in rendered
    assert unit_lines('Documentation') == [['man:camvirtd(8)', 'man:camvirtd.json(5)']]


def unpack(rpm, folder):
    archive = folder / (os.path.basename(rpm) + '.tgz')
    with open(archive, 'wb') as out:
        subprocess.run(['rpm2archive', '-'], stdin=open(rpm, 'rb'), stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder)


def test_python_package_imports_from_the_unpacked_rpm(rpms, tmp_path):
    unpack(rpms['python3-rockit-camvirt'], tmp_path)
    unpack(rpms['rockit-camvirt-data-superwasp'], tmp_path)
    sitelib = glob.glob(str(tmp_path / 'usr/lib/python3*/site-packages'))[0]
    script = ('import rockit.camvirt.shared.config as c, rockit.camvirt.shared.registry as r; '
              'print(c.__file__); print(c.load_config("{}", r.load_registry()).daemon.uri)'.format(
                  tmp_path / 'etc/camvirtd/superwasp_das1.json'))
    env = dict(os.environ, PYTHONPATH=sitelib, CAMVIRTD_REGISTRY='')
    out = run([sys.executable, '-c', script], env=env, cwd=str(tmp_path)).stdout.split()
    assert out == [sitelib + '/rockit/camvirt/shared/config.py', 'PYRO:superwasp_camvirt_daemon_das1@10.2.6.173:9012']


# What each packaged site config serves at, the same with today's rockit.common installed or without.
PACKAGED_SERVERS = {
    'sting_das1': 'PYRO:sting_camvirt_daemon_das1@10.2.6.173:9012',
    'sting_das2': 'PYRO:sting_camvirt_daemon_das2@10.2.6.175:9013',
    'superwasp_das1': 'PYRO:superwasp_camvirt_daemon_das1@10.2.6.173:9012',
    'superwasp_das2': 'PYRO:superwasp_camvirt_daemon_das2@10.2.6.175:9013',
    'clasp_cmos': 'PYRO:clasp_camvirt_cmos_daemon@10.2.6.182:9040',
    'clasp_swir': 'PYRO:clasp_camvirt_swir_daemon@10.2.6.187:9040',
    'clasp_das': 'PYRO:clasp_camvirt_daemon_1@10.2.6.182:9040',
    'clasp_tcs': 'PYRO:clasp_camvirt_daemon_2@10.2.6.181:9040',
}


def test_every_packaged_config_loads_with_and_without_todays_rockit_common(rpms, tmp_path):
    for name in ('python3-rockit-camvirt', 'rockit-camvirt-data-sting', 'rockit-camvirt-data-superwasp',
                 'rockit-camvirt-data-clasp'):
        unpack(rpms[name], tmp_path)
    sitelib = glob.glob(str(tmp_path / 'usr/lib/python3*/site-packages'))[0]
    configs = sorted(glob.glob(str(tmp_path / 'etc/camvirtd/*.json')))
    assert [os.path.basename(p)[:-5] for p in configs] == sorted(PACKAGED_SERVERS)
    script = ('import sys, rockit.camvirt.shared.config as c, rockit.camvirt.shared.registry as r; '
              'reg = r.load_registry(); '
              '[print(c.load_config(p, reg).daemon.uri, reg.describe_daemon(c.load_config(p, reg).daemon_name)) '
              'for p in sys.argv[1:]]')
    common = write_rockit_common(tmp_path / 'common')
    for pythonpath, today_source in ((sitelib, 'shipped'), ('{}:{}'.format(sitelib, common), 'rockit.common')):
        env = dict(os.environ, PYTHONPATH=pythonpath, CAMVIRTD_REGISTRY='')
        lines = run([sys.executable, '-c', script] + configs, env=env, cwd=str(tmp_path)).stdout.splitlines()
        for path, line in zip(configs, lines):
            name = os.path.basename(path)[:-5]
            source = today_source if name.startswith(('sting', 'clasp_cmos', 'clasp_swir')) else 'shipped'
            # (a seed daemon may live on a machine rockit.common names too: "shipped; host CLASPTCS from ...")
            assert line.split(';')[0] == '{} {}'.format(PACKAGED_SERVERS[name], source), name


@pytest.mark.parametrize('el', sorted(EL_PYTHONS))
def test_site_packages_abi_and_byte_code_follow_the_target_python(el, rpms, rpms_el10):
    package = (rpms if el == '9' else rpms_el10)['python3-rockit-camvirt']
    python = EL_PYTHONS[el]
    tag = 'cpython-' + python.replace('.', '')
    listed = rpm_query('-qlp', package).split()
    sitelib = '/usr/lib/python{}/site-packages/'.format(python)
    # Besides the Python package and its metadata, only the operators' registry folder (registry.py reads it).
    assert all(path.startswith((sitelib + 'rockit/camvirt', sitelib + 'rockit.camvirt-'))
               for path in listed if path != '/etc/camvirtd/registry.d'), listed
    assert 'python(abi) = {}'.format(python) in rpm_query('-qp', '--requires', package).splitlines()
    sources = [p for p in listed if p.endswith('.py')]
    for source in sources:
        name = os.path.basename(source)[:-3]
        assert '{}/__pycache__/{}.{}.pyc'.format(os.path.dirname(source), name, tag) in listed, source
    assert sitelib + 'rockit/camvirt/client/cli.py' in sources
    assert not [p for p in listed if p.endswith('.pyc') and tag not in p]


def test_version_is_the_same_in_packages_and_python(rpms, tmp_path):
    versions = {rpm_query('-qp', '--qf', '%{VERSION}', path) for path in rpms.values()}
    assert len(versions) == 1
    version = versions.pop()
    assert re.fullmatch(r'\d{14}', version), version
    expected = subprocess.run(['git', 'log', '-1', '--format=%cd', '--date=format-local:%Y%m%d%H%M%S'], cwd=REPO,
                              env=dict(os.environ, TZ='UTC'), capture_output=True, text=True).stdout.strip()
    assert version == expected  # the commit's time, as the clone's own __version__
    unpack(rpms['python3-rockit-camvirt'], tmp_path)
    sitelib = glob.glob(str(tmp_path / 'usr/lib/python3*/site-packages'))[0]
    out = run([sys.executable, '-c', 'import rockit.camvirt as c; print(c.__version__)'],
              env=dict(os.environ, PYTHONPATH=sitelib), cwd=str(tmp_path)).stdout.strip()
    assert out == version


def test_scripts_run_the_hosts_own_python(rpms, tmp_path):
    unpack(rpms['rockit-camvirt-server'], tmp_path)
    unpack(rpms['rockit-camvirt-client'], tmp_path)
    for name in ('camvirtd', 'camvirt'):
        with open(tmp_path / 'usr/bin' / name) as f:
            assert f.readline() == '#!/usr/bin/python3 -s\n'


def test_server_package_makes_the_user_and_lets_it_use_libvirt(rpms, tmp_path):
    scripts = rpm_query('-qp', '--scripts', rpms['rockit-camvirt-server'])
    assert 'useradd -r -g camvirtd -d /var/lib/camvirtd -s /sbin/nologin' in scripts
    unpack(rpms['rockit-camvirt-server'], tmp_path)
    sysusers = (tmp_path / 'usr/lib/sysusers.d/camvirtd.conf').read_text()
    assert re.search(r'^u camvirtd - "[^"]+" /var/lib/camvirtd -$', sysusers, re.M)
    rule = (tmp_path / 'usr/share/polkit-1/rules.d/50-camvirtd.rules').read_text()
    assert '"org.libvirt.unix.manage"' in rule and 'subject.user == "camvirtd"' in rule
    unit = (tmp_path / 'usr/lib/systemd/system/camvirtd@.service').read_text()
    assert 'User=camvirtd' in unit


def test_rpmlint_is_clean_but_for_what_the_spec_explains(rpms):
    result = subprocess.run(['rpmlint', '-r', os.path.join(REPO, 'rockit-camvirt.rpmlintrc')] + sorted(rpms.values())
                            + [os.path.join(REPO, 'rockit-camvirt.spec')], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '0 errors, 0 warnings' in result.stdout, result.stdout
    with open(os.path.join(REPO, 'rockit-camvirt.spec')) as f:
        spec = f.read()
    with open(os.path.join(REPO, 'rockit-camvirt.rpmlintrc')) as f:
        filters = re.findall(r'^addFilter\("([\w%-]+)', f.read(), re.M)
    assert filters
    for name in filters:
        assert re.search(r'^# - .*\b{}\b'.format(re.escape(name)), spec, re.M), name + ' is not explained in the spec'


def test_systemd_unit_verifies(tmp_path):
    with open(os.path.join(REPO, 'camvirtd@.service')) as f:
        unit = f.read()
    assert 'ExecStart=/usr/bin/camvirtd /etc/camvirtd/%i.json' in unit
    assert 'Type=notify' in unit and 'Restart=on-failure' in unit
    # The verifier checks that ExecStart's program exists: point it at the clone's.
    good = tmp_path / 'camvirtd@test.service'
    good.write_text(unit.replace('/usr/bin/camvirtd', os.path.join(REPO, 'camvirtd')))
    # The verifier also looks up Documentation='s manual pages: the clone's, laid out as installed.
    for page in glob.glob(os.path.join(REPO, 'man', '*.[0-9]')):
        section = tmp_path / 'man' / ('man' + page[-1])
        section.mkdir(parents=True, exist_ok=True)
        shutil.copy(page, str(section))
    env = dict(os.environ, MANPATH=str(tmp_path / 'man'))
    result = subprocess.run(['systemd-analyze', 'verify', str(good)], capture_output=True, text=True, env=env)
    assert (result.returncode, result.stderr) == (0, '')
    broken = tmp_path / 'broken@test.service'
    broken.write_text(good.read_text().replace('Type=notify', 'Type=notifyy'))
    result = subprocess.run(['systemd-analyze', 'verify', str(broken)], capture_output=True, text=True, env=env)
    assert 'Failed to parse service type' in result.stderr


def unit_lines(key):
    """The values of `key` in camvirtd@.service, each a list of words."""
    with open(os.path.join(REPO, 'camvirtd@.service')) as f:
        return [line.split('=', 1)[1].split() for line in f.read().splitlines() if line.startswith(key + '=')]


def test_unit_is_hardened(tmp_path):
    result = run(['systemd-analyze', 'security', '--offline=true', '--no-pager',
                  os.path.join(REPO, 'camvirtd@.service')])
    exposure = float(re.search(r'Overall exposure level for \S+: ([\d.]+)', result.stdout).group(1))
    assert exposure <= 2.0, result.stdout
    assert unit_lines('User') == [['camvirtd']] and unit_lines('CapabilityBoundingSet') == [[]]
    assert unit_lines('StateDirectory') == [['camvirtd']]
    # The resource limits the hostile-network issue measures.
    assert unit_lines('TasksMax') and unit_lines('LimitNOFILE') and unit_lines('MemoryMax')


def test_unit_follows_libvirt_either_way_and_never_needs_it():
    after = [word for words in unit_lines('After') for word in words]
    assert {'virtqemud.socket', 'virtqemud.service', 'libvirtd.service', 'libvirtd.socket'} <= set(after)
    pulled = [word for key in ('Requires', 'Requisite', 'BindsTo', 'Wants') for words in unit_lines(key)
              for word in words]
    assert not [unit for unit in pulled if 'virt' in unit], pulled


def test_camvirtd_tells_systemd_when_it_serves(tmp_path):
    registry, config, port = write_one_camera_files(tmp_path)
    notify_path = str(tmp_path / 'notify')
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(notify_path)
        notify.settimeout(20)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path, CAMVIRTD_REGISTRY=registry,
                   STATE_DIRECTORY=str(tmp_path / 'state'))
        daemon = subprocess.Popen([os.path.join(REPO, 'camvirtd'), config], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert notify.recv(100) == b'READY=1'
            # Ready means serving: a connection is accepted at once.
            socket.create_connection(('127.0.0.1', port), timeout=2).close()
            daemon.terminate()
            assert notify.recv(100) == b'STOPPING=1'
            assert daemon.wait(10) == 0
        finally:
            daemon.kill()
            daemon.communicate()


def complete(line, env):
    script = 'source {}; COMP_WORDS=({}); COMP_CWORD={}; _camvirt; echo "${{COMPREPLY[@]}}"'.format(
        os.path.join(REPO, 'completion', 'camvirt'), line, len(line.split()) - (0 if line.endswith(' ') else 1))
    if line.endswith(' '):
        script = script.replace('COMP_WORDS=({})'.format(line), 'COMP_WORDS=({} "")'.format(line))
    return sorted(run(['bash', '-c', script], env=env).stdout.split())


def test_bash_completion():
    env = dict(os.environ, PATH=REPO + ':' + os.environ['PATH'],
               CAMVIRTD_REGISTRY=os.path.join(REPO, 'testworld', 'registry-local.json'),
               CAMVIRTD_CONFIG_PATH=os.path.join(REPO, 'config', 'test.json'))
    assert complete('camvirt ', env) == ['config', 'history', 'init', 'kill', 'restart', 'status']
    assert complete('camvirt st', env) == ['status']
    assert complete('camvirt --', env) == ['--help', '--no-color', '--version']
    assert complete('camvirt --no-color init c', env) == ['cam1', 'cam2']  # global flags before the command
    assert complete('camvirt init ', env) == ['--no-color', 'cam1', 'cam2']
    assert complete('camvirt kill ', env) == ['--force', '--no-color', 'cam1', 'cam2']
    assert complete('camvirt kill c', env) == ['cam1', 'cam2']
    assert complete('camvirt restart --', env) == ['--no-color']
    assert complete('camvirt status --', env) == ['--all', '--installed', '--json', '--no-color', '--watch']
    assert complete('camvirt history --', env) == ['--json', '--no-color']
    assert complete('camvirt config --', env) == ['--json', '--no-color']


def test_domain_completion_reads_the_config_without_a_round_trip(tmp_path):
    """No camvirtd answers here (the registry points nowhere): the names still come, quickly."""
    folder = tmp_path / 'etc'
    folder.mkdir()
    (folder / 'site.json').write_text(json.dumps({'daemon': 'nowhere', 'domains': {'cmos': {}, 'swir': {}}}))
    env = dict(os.environ, CAMVIRTD_CONFIG_PATH=str(folder / 'site.json'))
    assert complete('camvirt init ', env) == ['--no-color', 'cmos', 'swir']


def test_bash_completion_knows_every_flag_of_the_parser():
    import argparse

    from rockit.camvirt.client.cli import build_parser
    env = dict(os.environ, PATH=REPO + ':' + os.environ['PATH'],
               CAMVIRTD_REGISTRY=os.path.join(REPO, 'testworld', 'registry-local.json'),
               CAMVIRTD_CONFIG_PATH=os.path.join(REPO, 'config', 'test.json'))
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        flags = {o for a in sub._actions for o in a.option_strings if o.startswith('--') and o != '--help'}
        assert flags and flags <= set(complete('camvirt {} --'.format(name), env)), name
    top = {o for a in parser._actions for o in a.option_strings if o.startswith('--')}
    assert top == set(complete('camvirt --', env))


def installed_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files)


def test_make_install_into_destdir(tmp_path):
    run(['make', '-s', 'install', 'DESTDIR={}'.format(tmp_path), 'CONFIG=superwasp_das1',
         'SITELIB=/usr/lib/python3.9/site-packages', 'VERSION=20260102030405'], cwd=REPO)
    for path in ['usr/bin/camvirtd', 'usr/bin/camvirt', 'usr/lib/systemd/system/camvirtd@.service',
                 'usr/lib/sysusers.d/camvirtd.conf', 'usr/share/polkit-1/rules.d/50-camvirtd.rules',
                 'etc/bash_completion.d/camvirt', 'etc/camvirtd/superwasp_das1.json',
                 'usr/share/man/man8/camvirtd.8', 'usr/share/man/man1/camvirt.1',
                 'usr/lib/python3.9/site-packages/rockit/camvirt/daemon/api.py',
                 'usr/lib/python3.9/site-packages/rockit/camvirt/data/registry.json']:
        assert (tmp_path / path).exists(), path
    assert os.access(tmp_path / 'usr/bin/camvirtd', os.X_OK)
    assert sorted(os.listdir(tmp_path / 'etc/camvirtd')) == ['registry.d', 'superwasp_das1.json']
    sitelib = str(tmp_path / 'usr/lib/python3.9/site-packages')
    out = run([sys.executable, '-c', 'import rockit.camvirt as c; print(c.__version__)'],
              env=dict(os.environ, PYTHONPATH=sitelib), cwd=str(tmp_path)).stdout.strip()
    assert out == '20260102030405'


def test_installed_tree_imports_and_runs_from_a_clean_prefix(tmp_path):
    """make install for this machine's own python3 (which has Debian's Pyro4, jsonschema, libvirt and
    rich), then both commands from that tree alone: no clone, no venv, no user site."""
    sitelib = '/usr/lib/python3/dist-packages'
    dest = tmp_path / 'dest'
    run(['make', '-s', 'install', 'DESTDIR={}'.format(dest), 'INSTALL_PYTHON=/usr/bin/python3',
         'SITELIB=' + sitelib, 'VERSION=20260102030405'], cwd=REPO)
    sources = subprocess.run(['git', 'ls-files', 'rockit/camvirt'], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    installed = set(installed_files(str(dest) + sitelib))
    assert {p for p in sources} <= installed  # every module and data file, however deep
    assert not [p for p in installed if p.startswith('rockit/') and '__pycache__' not in p
                and p not in sources and not p.endswith('_version.py')]
    env = {'PATH': '/usr/bin:/bin', 'PYTHONPATH': str(dest) + sitelib, 'HOME': str(tmp_path)}
    for command, words in (('camvirtd', ['--state-dir', 'config']), ('camvirt', ['init', 'status', 'config'])):
        result = subprocess.run([str(dest / 'usr/bin' / command), '--help'], env=env, cwd=str(tmp_path),
                                capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stderr) == (0, ''), command
        assert all(word in result.stdout for word in words), result.stdout
    where = run(['/usr/bin/python3', '-s', '-c', 'import rockit.camvirt.shared.config as c, importlib.metadata as m; '
                 'print(c.__file__, m.version("rockit.camvirt"))'], env=env, cwd=str(tmp_path)).stdout.split()
    assert where == [str(dest) + sitelib + '/rockit/camvirt/shared/config.py', '20260102030405']


def test_make_install_replaces_only_rockit_camvirt_beside_rockit_common(tmp_path):
    """rockit/ is a namespace rockit.common shares: an install over an older one replaces
    rockit/camvirt/ and its metadata (no stale module left), never rockit/common/."""
    sitelib = tmp_path / 'usr/lib/python3/dist-packages'
    (sitelib / 'rockit/common').mkdir(parents=True)
    (sitelib / 'rockit/common/__init__.py').write_text('IP = None\n')
    (sitelib / 'rockit/camvirt').mkdir()
    (sitelib / 'rockit/camvirt/stale.py').write_text('')
    (sitelib / 'rockit.camvirt-20250101000000.dist-info').mkdir()
    run(['make', '-s', 'install', 'DESTDIR={}'.format(tmp_path), 'INSTALL_PYTHON=/usr/bin/python3',
         'SITELIB=/usr/lib/python3/dist-packages', 'VERSION=20260102030405'], cwd=REPO)
    assert (sitelib / 'rockit/common/__init__.py').read_text() == 'IP = None\n'
    assert not (sitelib / 'rockit/camvirt/stale.py').exists() and (sitelib / 'rockit/camvirt/shared/config.py').exists()
    assert sorted(p.name for p in sitelib.glob('rockit*camvirt-*.dist-info')) == \
        ['rockit.camvirt-20260102030405.dist-info']
