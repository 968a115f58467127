"""Registry layering: the shipped registry as the base, today's rockit.common (a stand-in of its shape)
over it, operator files over both; where each name came from; every shipped config loads either way."""

import glob
import json
import os

import Pyro4.core
import pytest

from rockit.camvirt.shared import registry as registry_module
from rockit.camvirt.shared.config import load_config
from rockit.camvirt.shared.registry import SHIPPED, RegistryError, load_registry
from rockit.camvirt.shared.registryfile import MAX_PROBLEMS
from testworld.rockitcommon_standin import TODAY_DAEMONS, TODAY_MACHINES, load_in_a_process, write_rockit_common

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE = os.path.join(REPO, '..', 'shared', 'reference', 'rockit-registry.json')
LOCAL_REGISTRY = os.path.join(REPO, 'testworld', 'registry-local.json')
# The site configs the data packages ship: the seed's and today's.
SITE_CONFIGS = sorted(p for p in glob.glob(os.path.join(REPO, 'config', '*.json'))
                      if not os.path.basename(p).startswith('test'))
TODAYS_CONFIGS = ['sting_das1', 'sting_das2', 'clasp_cmos', 'clasp_swir']
SEED_CONFIGS = ['superwasp_das1', 'superwasp_das2', 'clasp_das', 'clasp_tcs']


def config_path(name):
    return os.path.join(REPO, 'config', name + '.json')


@pytest.fixture(autouse=True)
def no_operator_registry(monkeypatch):
    monkeypatch.setenv('CAMVIRTD_REGISTRY', '')


def test_the_site_configs_are_the_seeds_and_todays():
    assert [os.path.basename(p)[:-5] for p in SITE_CONFIGS] == sorted(TODAYS_CONFIGS + SEED_CONFIGS)


@pytest.mark.skipif(not os.path.exists(REFERENCE), reason='reference registry not beside the repo')
def test_shipped_registry_has_every_reference_fact():
    with open(REFERENCE) as f:
        reference = json.load(f)
    registry = load_registry()
    for name, entry in reference['daemons'].items():
        address = registry.daemon(name)
        assert (address.object_id, address.host, address.port) == (
            entry['object_id'], reference['machines'][entry['host']], entry['port'])
    for name, ip in reference['machines'].items():
        assert registry.machine_ip(name) == ip


def test_shipped_registry_knows_todays_names():
    registry = load_registry()
    for name, ip in TODAY_MACHINES.items():
        assert registry.machine_ip(name) == ip
        assert registry.machine_source(name) == SHIPPED
    for name, (object_id, machine, port) in TODAY_DAEMONS.items():
        assert registry.daemon(name)[1:] == (object_id, TODAY_MACHINES[machine], port)
        assert registry.describe_daemon(name) == SHIPPED


def test_todays_site_configs_match_rockit():
    """The four configs upstream ships today, as ROCKIT.md gives them."""
    expected = {
        'sting_das1': ('sting_camvirt_das1', 'camvirtd@sting_das1', ['STINGTCS', 'STINGDAS1', 'STINGDAS2'],
                       {'cam1': {'cam1': 'sting_cam1'}, 'cam2': {'cam2': 'sting_cam2'}}),
        'sting_das2': ('sting_camvirt_das2', 'camvirtd@sting_das2', ['STINGTCS', 'STINGDAS1', 'STINGDAS2'],
                       {'cam3': {'cam3': 'sting_cam3'}, 'cam4': {'cam4': 'sting_cam4'}}),
        'clasp_cmos': ('clasp_camvirt_cmos', 'camvirtd@clasp-cmos', ['CLASPTCS', 'CLASPCMOS', 'CLASPSWIR'],
                       {'cmos': {'cmos': 'clasp_camera_cmos'}}),
        'clasp_swir': ('clasp_camvirt_swir', 'camvirtd@clasp-swir', ['CLASPTCS', 'CLASPCMOS', 'CLASPSWIR'],
                       {'swir': {'swir': 'clasp_camera_swir'}}),
    }
    for name, (daemon, log_name, machines, domains) in expected.items():
        with open(config_path(name)) as f:
            data = json.load(f)
        assert data == {'daemon': daemon, 'log_name': log_name, 'control_machines': machines,
                        'initialize_timeout': 90, 'shutdown_timeout': 30, 'domains': domains}, name


def test_every_shipped_config_loads_without_rockit_common():
    loaded = load_in_a_process(None, SITE_CONFIGS)
    assert loaded['warnings'] == []
    for path, config in loaded['configs'].items():
        assert 'error' not in config, config
        assert set(config['sources'].values()) == {SHIPPED}, path
    assert loaded['configs'][config_path('sting_das1')]['server'] == 'PYRO:sting_camvirt_daemon_das1@10.2.6.173:9012'
    assert loaded['configs'][config_path('clasp_swir')]['cameras'] == {
        'swir': 'PYRO:clasp_camera_swir_daemon@10.2.6.186:9038'}


def test_every_shipped_config_loads_with_todays_rockit_common(tmp_path):
    """Today's rockit.common has no SuperWASP or clasp_camvirt_1/2 names: the seed's configs still load
    (from the shipped layer), today's take their names from rockit.common, at the same addresses."""
    without = load_in_a_process(None, SITE_CONFIGS)['configs']
    loaded = load_in_a_process(write_rockit_common(tmp_path), SITE_CONFIGS)
    assert loaded['warnings'] == []
    for path, config in loaded['configs'].items():
        assert 'error' not in config, config
        name = os.path.basename(path)[:-5]
        # A seed daemon is the shipped layer's, on a machine that may be rockit.common's (CLASPCMOSVM).
        expected_source = 'rockit.common' if name in TODAYS_CONFIGS else SHIPPED
        assert {source.split(';')[0] for source in config['sources'].values()} == {expected_source}, path
        assert {k: config[k] for k in ('server', 'cameras', 'control_machines')} == \
            {k: without[path][k] for k in ('server', 'cameras', 'control_machines')}, path


def test_a_name_rockit_common_redefines_takes_its_address(tmp_path):
    common = write_rockit_common(tmp_path, machines={'STINGDAS1': '192.0.2.73'},
                                 daemons={'sting_camvirt_das2': ('sting_camvirt_daemon_das2', 'STINGDAS2', 9513),
                                          'superwasp_cam1': ('moved_camera_daemon_1', 'STINGCameraVM1', 9140)})
    loaded = load_in_a_process(common, [config_path('sting_das1'), config_path('sting_das2'),
                                        config_path('superwasp_das1')])['configs']
    assert loaded[config_path('sting_das1')]['server'] == 'PYRO:sting_camvirt_daemon_das1@192.0.2.73:9012'
    assert loaded[config_path('sting_das1')]['control_machines']['STINGDAS1'] == '192.0.2.73'
    assert loaded[config_path('sting_das2')]['server'] == 'PYRO:sting_camvirt_daemon_das2@10.2.6.175:9513'
    # A seed name rockit.common defines again is rockit.common's; the seed's others stay shipped.
    seed = loaded[config_path('superwasp_das1')]
    assert seed['cameras']['cam1'] == 'PYRO:moved_camera_daemon_1@10.2.6.165:9140'
    assert seed['sources'] == {'superwasp_camvirt_das1': SHIPPED, 'superwasp_cam1': 'rockit.common',
                               'superwasp_cam2': SHIPPED}


def test_an_operator_file_overrides_both(tmp_path):
    common = write_rockit_common(tmp_path / 'common', machines={'STINGDAS1': '192.0.2.73'})
    operator = tmp_path / 'site.json'
    operator.write_text(json.dumps({
        'machines': {'STINGDAS1': '192.0.2.99', 'SWASPCameraVM2': '192.0.2.66'},
        'daemons': {'sting_cam2': {'object_id': 'sting_camera_daemon_2', 'host': '192.0.2.42', 'port': 9141}}}))
    paths = [config_path('sting_das1'), config_path('superwasp_das1')]
    loaded = load_in_a_process(common, paths, CAMVIRTD_REGISTRY=str(operator))['configs']
    today, seed = loaded[paths[0]], loaded[paths[1]]
    # The machine moves every daemon on it, whichever layer placed the daemon there.
    assert today['server'] == 'PYRO:sting_camvirt_daemon_das1@192.0.2.99:9012'
    assert today['sources']['sting_camvirt_das1'] == 'rockit.common; host STINGDAS1 from {}'.format(operator)
    assert today['cameras']['cam2'] == 'PYRO:sting_camera_daemon_2@192.0.2.42:9141'
    assert today['sources']['sting_cam2'] == str(operator)
    assert seed['cameras']['cam2'] == 'PYRO:superwasp_camera_daemon_2@192.0.2.66:9041'
    assert seed['sources']['superwasp_cam2'] == 'shipped; host SWASPCameraVM2 from {}'.format(operator)


def test_operator_files_in_registry_d_overlay_in_name_order(tmp_path, monkeypatch):
    folder = tmp_path / 'registry.d'
    folder.mkdir()
    (folder / '10-site.json').write_text(json.dumps({'machines': {'STINGDAS1': '192.0.2.1', 'Extra': '192.0.2.5'}}))
    (folder / '20-tonight.json').write_text(json.dumps({'machines': {'STINGDAS1': '192.0.2.2'}}))
    (folder / 'notes.txt').write_text('not a registry file')
    monkeypatch.delenv('CAMVIRTD_REGISTRY')
    monkeypatch.setattr(registry_module, 'REGISTRY_DIR', str(folder))
    registry = load_registry()
    assert registry.daemon('sting_camvirt_das1').host == '192.0.2.2'
    assert registry.machine_source('STINGDAS1') == str(folder / '20-tonight.json')
    assert registry.machine_source('Extra') == str(folder / '10-site.json')
    # CAMVIRTD_REGISTRY replaces the folder.
    monkeypatch.setenv('CAMVIRTD_REGISTRY', str(folder / '10-site.json'))
    assert load_registry().daemon('sting_camvirt_das1').host == '192.0.2.1'


def test_the_test_names_are_the_test_worlds_not_the_products(monkeypatch):
    assert not load_registry().has_daemon('localhost_camvirt')
    monkeypatch.setenv('CAMVIRTD_REGISTRY', LOCAL_REGISTRY)
    registry = load_registry()
    assert registry.daemon('localhost_camvirt').uri == 'PYRO:localhost_camvirt_daemon@127.0.0.1:9020'
    assert registry.machine_ip('LocalHost') == '127.0.0.1'
    assert registry.describe_daemon('localhost_camvirt') == LOCAL_REGISTRY


def test_operator_file_adds_and_normalises_addresses(tmp_path, monkeypatch):
    override = tmp_path / 'site.json'
    override.write_text(json.dumps({
        '_about': 'comments are keys starting with _',
        'machines': {'NewHost': '2001:db8:0:0:0:0:0:11'},
        'daemons': {'extra_cam': {'object_id': 'extra', 'host': 'NewHost', 'port': 9100},
                    'literal': {'object_id': 'lit', 'host': '0:0:0:0:0:0:0:1', 'port': 9101}},
    }))
    monkeypatch.setenv('CAMVIRTD_REGISTRY', str(override))
    registry = load_registry()
    assert registry.daemon('extra_cam').uri == 'PYRO:extra@[2001:db8::11]:9100'
    parsed = Pyro4.core.URI(registry.daemon('extra_cam').uri)
    assert (parsed.object, parsed.host, parsed.port) == ('extra', '2001:db8::11', 9100)
    assert registry.daemon('literal').host == '::1'
    assert registry.host_machine('literal') is None and registry.describe_daemon('literal') == str(override)


def test_a_daemon_on_a_machine_no_layer_names_is_an_error_naming_the_file(tmp_path, monkeypatch):
    override = tmp_path / 'site.json'
    override.write_text(json.dumps({'daemons': {
        'a': {'object_id': 'a', 'host': 'NoSuchHost', 'port': 9100},
        'b': {'object_id': 'b', 'host': 'Elsewhere', 'port': 9100}}}))
    monkeypatch.setenv('CAMVIRTD_REGISTRY', str(override))
    with pytest.raises(RegistryError) as raised:
        load_registry()
    assert raised.value.problems == [
        "{}: daemons.a.host: unknown machine name 'NoSuchHost' (no registry layer names it)".format(override),
        "{}: daemons.b.host: unknown machine name 'Elsewhere' (no registry layer names it)".format(override)]


def test_a_host_named_in_another_operator_file_is_known(tmp_path, monkeypatch):
    machines, daemons = tmp_path / 'm.json', tmp_path / 'd.json'
    machines.write_text(json.dumps({'machines': {'NewHost': '192.0.2.7'}}))
    daemons.write_text(json.dumps({'daemons': {'x': {'object_id': 'x', 'host': 'NewHost', 'port': 1}}}))
    monkeypatch.setenv('CAMVIRTD_REGISTRY', '{}:{}'.format(daemons, machines))
    assert load_registry().daemon('x').host == '192.0.2.7'


def test_every_bad_operator_file_is_reported(tmp_path, monkeypatch):
    good, bad1, bad2 = tmp_path / 'good.json', tmp_path / 'bad1.json', tmp_path / 'bad2.json'
    good.write_text('{}')
    bad1.write_text('{"machines": []}')
    bad2.write_text('{"daemons": "x"}')
    monkeypatch.setenv('CAMVIRTD_REGISTRY', ':'.join(map(str, (good, bad1, bad2))))
    with pytest.raises(RegistryError) as raised:
        load_registry()
    assert [line.split(': ')[:2] for line in raised.value.problems] == [[str(bad1), 'machines'],
                                                                        [str(bad2), 'daemons']]


def test_config_keeps_the_registry_it_was_resolved_with():
    registry = load_registry()
    config = load_config(config_path('clasp_cmos'), registry)
    assert config.registry is registry
    assert registry.sources_for(['clasp_camvirt_cmos', 'clasp_camera_cmos', 'nonesuch'], ['CLASPTCS']) == {
        'daemons': {'clasp_camvirt_cmos': SHIPPED, 'clasp_camera_cmos': SHIPPED},
        'machines': {'CLASPTCS': SHIPPED, 'CLASPCMOS': SHIPPED, 'CLASPCMOSVM': SHIPPED}}


def test_many_daemons_on_unknown_machines_are_counted_not_all_listed(tmp_path, monkeypatch):
    override = tmp_path / 'site.json'
    override.write_text(json.dumps({'daemons': {'d{}'.format(i): {'object_id': 'd', 'host': 'Nowhere', 'port': 1}
                                                for i in range(500)}}))
    monkeypatch.setenv('CAMVIRTD_REGISTRY', str(override))
    with pytest.raises(RegistryError) as raised:
        load_registry()
    assert len(raised.value.problems) == MAX_PROBLEMS + 1
    assert raised.value.problems[-1] == '{}: ... and {} more problems'.format(override, 500 - MAX_PROBLEMS)
