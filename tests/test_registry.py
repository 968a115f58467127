"""Registry: the shipped rockit facts, the loopback names of config/test.json, operator overrides and
rockit.common when it is installed."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from rockit.camvirt.registry import RegistryError, load_registry

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(REPO, '..', 'shared', 'reference', 'rockit-registry.json')
LOCAL_REGISTRY = os.path.join(REPO, 'testworld', 'registry-local.json')


@pytest.fixture(autouse=True)
def no_operator_registry(monkeypatch):
    monkeypatch.setenv('CAMVIRTD_REGISTRY', '')


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


def test_the_test_names_are_the_test_worlds_not_the_products(monkeypatch):
    assert not load_registry().has_daemon('localhost_camvirt')
    monkeypatch.setenv('CAMVIRTD_REGISTRY', LOCAL_REGISTRY)
    registry = load_registry()
    assert registry.daemon('localhost_camvirt').uri == 'PYRO:localhost_camvirt_daemon@127.0.0.1:9020'
    assert registry.machine_ip('LocalHost') == '127.0.0.1'


def test_operator_file_overrides_and_adds(tmp_path, monkeypatch):
    override = tmp_path / 'site.json'
    override.write_text(json.dumps({
        'machines': {'SWASPDAS1': '192.0.2.10', 'NewHost': '192.0.2.11'},
        'daemons': {'extra_cam': {'object_id': 'extra', 'host': 'NewHost', 'port': 9100}},
    }))
    monkeypatch.setenv('CAMVIRTD_REGISTRY', str(override))
    registry = load_registry()
    # A machine's new IP applies to the daemons that live on it.
    assert registry.daemon('superwasp_camvirt_das1').host == '192.0.2.10'
    assert registry.daemon('extra_cam').uri == 'PYRO:extra@192.0.2.11:9100'


@pytest.mark.parametrize('content,text', [
    ('{', 'not valid JSON'),
    ('[]', 'must hold a JSON object'),
    ('{"machines": {"X": "not-an-ip"}}', "machines.X: 'not-an-ip' is not an IP address"),
    ('{"daemons": {"d": {"host": "LocalHost", "port": 1}}}', 'daemons.d: needs'),
])
def test_bad_operator_file_is_named(tmp_path, monkeypatch, content, text):
    override = tmp_path / 'bad.json'
    override.write_text(content)
    monkeypatch.setenv('CAMVIRTD_REGISTRY', str(override))
    with pytest.raises(RegistryError) as raised:
        load_registry()
    assert str(raised.value).startswith(str(override))
    assert text in str(raised.value)


def test_rockit_common_is_the_registry_when_installed(tmp_path):
    """A real rockit.common package on the path (laid out as rockit-common ships it) replaces the
    shipped registry; the test world's loopback names are not in it."""
    common = tmp_path / 'rockit' / 'common'
    common.mkdir(parents=True)
    (common / '__init__.py').write_text('from .ip import IP\nfrom . import daemons\n')
    (common / 'ip.py').write_text("class IP:\n    LocalHost = '127.0.0.1'\n    DASHost = '192.0.2.20'\n")
    (common / 'daemons.py').write_text(textwrap.dedent('''
        from .ip import IP
        class PyroDaemon:
            def __init__(self, name, host, port):
                self.name, self.host, self.port = name, host, port
                self.uri = 'PYRO:{}@{}:{}'.format(name, host, port)
        site_camvirt = PyroDaemon('site_camvirt_daemon', IP.DASHost, 9500)
    '''))
    script = textwrap.dedent('''
        from rockit.camvirt.registry import load_registry
        r = load_registry()
        print(r.daemon('site_camvirt').uri, r.has_daemon('superwasp_cam1'), r.has_daemon('localhost_camvirt'))
    ''')
    env = dict(os.environ, PYTHONPATH='{}:{}'.format(REPO, tmp_path), CAMVIRTD_REGISTRY='')
    out = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ['PYRO:site_camvirt_daemon@192.0.2.20:9500', 'False', 'False']
