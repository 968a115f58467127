"""Config: the rockit site configs load unchanged; every kind of bad config gets one line per problem
naming the file and key path."""

import copy
import json
import os
import time

import pytest

from rockit.camvirt.shared.config import DEFAULT_LIBVIRT_URI, ConfigError, load_config, parse_config
from rockit.camvirt.shared.quoting import quote
from rockit.camvirt.shared.registry import load_registry

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE = os.path.join(REPO, '..', 'shared', 'reference', 'rockit-registry.json')
SITE_CONFIGS = ['superwasp_das1', 'superwasp_das2', 'clasp_das', 'clasp_tcs']

GOOD = {
    'daemon': 'superwasp_camvirt_das1', 'log_name': 'camvirtd@x', 'control_machines': ['SWASPTCS'],
    'initialize_timeout': 90, 'shutdown_timeout': 30,
    'domains': {'cam1': {'cam1': 'superwasp_cam1'}, 'cam2': {'cam2': 'superwasp_cam2'}},
}


@pytest.fixture(autouse=True)
def no_operator_registry(monkeypatch):
    monkeypatch.setenv('CAMVIRTD_REGISTRY', '')


@pytest.fixture
def registry():
    return load_registry()


@pytest.mark.parametrize('name', SITE_CONFIGS)
def test_site_configs_ship_unchanged_and_load(name, registry):
    path = os.path.join(REPO, 'config', name + '.json')
    with open(path) as f:
        shipped = json.load(f)
    if os.path.exists(REFERENCE):
        with open(REFERENCE) as f:
            assert shipped == json.load(f)['site_configs'][name]
    config = load_config(path, registry)
    assert config.libvirt_uri == DEFAULT_LIBVIRT_URI
    assert set(config.domains) == set(shipped['domains'])
    assert config.daemon.host.startswith('10.2.6.')


def test_superwasp_das1_resolves_addresses(registry):
    config = load_config(os.path.join(REPO, 'config', 'superwasp_das1.json'), registry)
    assert config.daemon.uri == 'PYRO:superwasp_camvirt_daemon_das1@10.2.6.173:9012'
    assert config.cameras['cam2'].address.uri == 'PYRO:superwasp_camera_daemon_2@10.2.6.166:9041'
    assert config.control_ips == {'10.2.6.160', '10.2.6.173', '10.2.6.175'}
    assert config.log_daemon.uri == 'PYRO:observatory_log_daemon@10.2.6.100:9016'


def test_test_config_is_all_loopback(monkeypatch):
    monkeypatch.setenv('CAMVIRTD_REGISTRY', os.path.join(REPO, 'testworld', 'registry-local.json'))
    config = load_config(os.path.join(REPO, 'config', 'test.json'), load_registry())
    assert config.daemon.host == '127.0.0.1'
    assert config.control_ips == {'127.0.0.1'}
    assert all(c.address.host == '127.0.0.1' for c in config.cameras.values())
    assert config.log_daemon.host == '127.0.0.1'


def mutated(change):
    data = copy.deepcopy(GOOD)
    change(data)
    return data


BAD_CASES = [
    # The project's own words, the same on jsonschema 3.2 and 4.x.
    ('missing key', lambda d: d.pop('log_name'), 'log_name', 'required key is missing'),
    ('unknown key', lambda d: d.update(colour='red'), 'colour', 'unknown key'),
    ('wrong type', lambda d: d.update(initialize_timeout='90'), 'initialize_timeout',
     'must be a number, not a string'),
    ('timeout below 1', lambda d: d.update(shutdown_timeout=0.5), 'shutdown_timeout', 'must be at least 1, not 0.5'),
    ('boolean timeout', lambda d: d.update(initialize_timeout=True), 'initialize_timeout',
     'must be a number, not true or false'),
    ('no domains', lambda d: d.update(domains={}), 'domains', 'must not be empty'),
    ('domain without cameras', lambda d: d['domains'].update(cam3={}), 'domains.cam3', 'must not be empty'),
    ('camera daemon not a string', lambda d: d['domains']['cam1'].update(cam1=5), 'domains.cam1.cam1',
     'must be a string, not an integer'),
    ('control machines not a list', lambda d: d.update(control_machines='SWASPTCS'), 'control_machines',
     'must be a list, not a string'),
    ('empty log name', lambda d: d.update(log_name=''), 'log_name', 'must not be empty'),
    ('long log name', lambda d: d.update(log_name='x' * 5000000), 'log_name',
     'has 5000000 characters, at most 100 allowed'),
    ('timeout of an hour and more', lambda d: d.update(initialize_timeout=1e400), 'initialize_timeout',
     'must be at most 3600, not inf'),
    ('NaN timeout', lambda d: d.update(shutdown_timeout=float('nan')), 'shutdown_timeout',
     'must be a finite number, not nan'),
    ('domain name with a space', lambda d: d['domains'].update({'cam 3': {'cam3': 'superwasp_cam3'}}), 'domains',
     "'cam 3' is not a name of 1-64 letters, digits and ._+-"),
    ('camera id of 65 characters', lambda d: d['domains']['cam1'].update({'c' * 65: 'superwasp_cam3'}),
     'domains.cam1', "{} is not a name of 1-64".format(quote('c' * 65, 40))),
    ('too many domains', lambda d: d.update(domains={'d{}'.format(i): {'c{}'.format(i): 'superwasp_cam1'}
                                                     for i in range(300000)}),
     'domains', 'has 300000 domains, at most 32 allowed'),
    ('too many cameras in one domain', lambda d: d['domains'].update(cam1={'c{}'.format(i): 'superwasp_cam1'
                                                                           for i in range(40)}),
     'domains', 'has 41 cameras in all, at most 32 allowed'),
    ('the same machine twice', lambda d: d.update(control_machines=['SWASPTCS', 'SWASPTCS']), 'control_machines',
     'has an item more than once'),
    ('unknown daemon', lambda d: d.update(daemon='nosuch_daemon'), 'daemon', "unknown daemon name 'nosuch_daemon'"),
    ('unknown machine', lambda d: d.update(control_machines=['SWASPTCS', 'Nowhere']), 'control_machines.1',
     "unknown machine name 'Nowhere'"),
    ('unknown camera daemon', lambda d: d['domains']['cam1'].update(cam1='nosuch_cam'), 'domains.cam1.cam1',
     "unknown daemon name 'nosuch_cam'"),
    ('camera id used twice', lambda d: d['domains']['cam2'].update(cam1='superwasp_cam3'), 'domains.cam2.cam1',
     "camera id 'cam1' is already used by domain 'cam1'"),
]


@pytest.mark.parametrize('label,change,key,text', BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_config_names_file_and_key(label, change, key, text, registry):
    with pytest.raises(ConfigError) as raised:
        parse_config(mutated(change), '/etc/camvirtd/x.json', registry)
    assert len(raised.value.problems) == 1, raised.value.problems
    line = raised.value.problems[0]
    assert line.startswith('/etc/camvirtd/x.json: {}: '.format(key)), line
    assert text in line
    assert '\n' not in line


def test_every_problem_gets_its_own_line(registry):
    data = mutated(lambda d: d.update(initialize_timeout=0, shutdown_timeout='x', extra=1))
    with pytest.raises(ConfigError) as raised:
        parse_config(data, 'c.json', registry)
    keys = sorted(line.split(': ')[1] for line in raised.value.problems)
    assert keys == ['extra', 'initialize_timeout', 'shutdown_timeout']


def test_a_list_is_not_a_config(registry):
    with pytest.raises(ConfigError) as raised:
        parse_config(list(range(1000000)), 'c.json', registry)
    assert raised.value.problems == ['c.json: (top level): must be an object, not a list']


def test_problem_lines_are_capped(registry):
    data = mutated(lambda d: d.update({'key{}'.format(i): i for i in range(50000)}))
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        parse_config(data, 'c.json', registry)
    assert time.monotonic() - started < 5  # generous: 1 s on an idle machine
    assert len(raised.value.problems) == 11
    assert raised.value.problems[0] == 'c.json: (top level): and 49990 more unknown keys'
    assert max(len(line) for line in raised.value.problems) < 200


def test_not_json(tmp_path, registry):
    path = tmp_path / 'broken.json'
    path.write_text('{"daemon": ')
    with pytest.raises(ConfigError) as raised:
        load_config(str(path), registry)
    assert raised.value.problems[0].startswith('{}: config is not valid JSON'.format(path))


@pytest.mark.parametrize('kind', ['fifo', 'device', 'deep', 'large'])
def test_a_file_that_is_no_config_is_one_line_at_once(tmp_path, registry, kind):
    path = str(tmp_path / 'c.json')
    if kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'device':
        path = '/dev/zero'
    else:
        with open(path, 'w') as f:
            f.write('[' * 100000 + ']' * 100000 if kind == 'deep' else json.dumps(list(range(3000000))))
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        load_config(path, registry)
    assert time.monotonic() - started < 5
    assert len(raised.value.problems) == 1 and len(raised.value.problems[0]) < 200
    assert raised.value.problems[0].startswith(path + ': ')


def test_missing_file(tmp_path, registry):
    with pytest.raises(ConfigError) as raised:
        load_config(str(tmp_path / 'absent.json'), registry)
    assert 'cannot read config' in str(raised.value)


def test_optional_keys(registry):
    data = mutated(lambda d: d.update(libvirt_uri='test:///default', camera_timeout=0.25,
                                      log_daemon='superwasp_cam1'))
    config = parse_config(data, 'c.json', registry)
    assert config.libvirt_uri == 'test:///default'
    assert config.camera_timeout == 0.25
    assert config.log_daemon.object_id == 'superwasp_camera_daemon_1'


@pytest.mark.parametrize('seconds', [5, 7.5])
def test_a_camera_timeout_rockit_clients_cannot_wait_for_is_refused(registry, seconds):
    data = mutated(lambda d: d.update(camera_timeout=seconds))
    with pytest.raises(ConfigError) as raised:
        parse_config(data, 'c.json', registry)
    assert 'camera_timeout' in str(raised.value)
    assert parse_config(mutated(lambda d: d.update(camera_timeout=4.5)), 'c.json', registry).camera_timeout == 4.5
