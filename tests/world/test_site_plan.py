"""The site world's plan (testworld/siteplan.py): its addresses, registry and camvirtd configs load
through the product's own registry and config code, and say what a site says."""

import ipaddress

import pytest

from rockit.camvirt.shared.config import parse_config
from rockit.camvirt.shared.registry import REGISTRY_ENV, load_registry
from testworld.site import plan as siteplan

BENCHMARKING = ipaddress.ip_network('198.18.0.0/15')


@pytest.fixture
def site_registry(tmp_path, monkeypatch):
    """The registry as camvirtd loads it with the world's file as its operator layer."""
    path = str(tmp_path / 'registry.json')
    siteplan.write_json(path, siteplan.registry_data())
    monkeypatch.setenv(REGISTRY_ENV, path)
    return load_registry()


def every_address():
    cameras = [a for _das, (bridge, cams) in siteplan.CAMERA_NETS.items() for a in [bridge] + list(cams.values())]
    return list(siteplan.SITE_HOSTS.values()) + cameras


def test_every_address_is_a_distinct_one_from_the_benchmarking_range():
    addresses = every_address()
    assert len(set(addresses)) == len(addresses)
    assert all(ipaddress.ip_address(a) in BENCHMARKING for a in addresses)


@pytest.mark.parametrize('das', ['das1', 'das2'])
def test_each_das_config_loads_and_names_the_tcs_and_both_das_hosts_as_control_machines(das, tmp_path,
                                                                                      site_registry):
    folder = str(tmp_path)
    config = parse_config(siteplan.config_data(folder, das, 1.0, 60), das + '.json', site_registry)
    # Compared as addresses: control_ips may hold strings or ipaddress objects.
    control = {ipaddress.ip_address(str(ip)) for ip in config.control_ips}
    assert control == {ipaddress.ip_address(a) for a in ('198.18.0.10', '198.18.0.11', '198.18.0.12')}
    assert ipaddress.ip_address('198.18.0.20') not in control  # the dashboard
    assert (config.daemon.host, config.daemon.port) == (siteplan.SITE_HOSTS[das], siteplan.CAMVIRTD_PORTS[das])
    cameras = siteplan.CAMERA_NETS[das][1]
    assert {c.id: c.address.host for c in config.cameras.values()} == dict(cameras)
    assert config.libvirt_uri.endswith('socket={}/{}/libvirt-sock'.format(folder, das))


def test_the_site_description_names_each_host_by_the_worlds_prefix(tmp_path):
    site = siteplan.site_description(str(tmp_path), 'cvs123abc')
    assert {h['ns'] for h in site['hosts'].values()} == {
        'cvs123abc-tcs', 'cvs123abc-das1', 'cvs123abc-das2', 'cvs123abc-dashboard'}
    assert site['camvirtd']['das1']['uri'] == 'PYRO:testsite_camvirt_daemon_das1@198.18.0.11:9012'
    assert site['cameras']['cam3'] == {'ns': 'cvs123abc-cam3', 'address': '198.18.2.13', 'das': 'das2',
                                       'port': 9042}
