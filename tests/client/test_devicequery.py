"""`camvirt config` lists each domain's passthrough devices: from camvirtd when it answers, else from
libvirt read here (a test driver XML world: the client's own connection reads the same file)."""

import json

from devworld import PCI_ABSENT, SCSI, USB_BY_IDS, device_driver

from client.test_client import camvirt


def test_config_lists_devices_from_camvirtd_then_from_libvirt(make_world, tmp_path):
    world = make_world(domains=2, driver_xml=device_driver(tmp_path, [[USB_BY_IDS, SCSI], [PCI_ABSENT]]))
    env = world.client_env(tmp_path)
    first, second = world.domain_names
    text = camvirt(env, 'config').stdout.splitlines()
    assert 'devices from:     camvirtd' in text
    assert 'domain {}: USB device 03c3:2600 (ZWO ASI2600MM Pro) present'.format(first) in text
    assert 'domain {}: PCI device 0000:04:00.0 ABSENT'.format(second) in text
    assert any(line.startswith('domain {}: scsi device '.format(first)) and line.endswith(' not checked')
               for line in text)

    world.pyro.shutdown()  # camvirtd gone: libvirt read-only, here, says the same
    summary = json.loads(camvirt(env, 'config', '--json').stdout)
    assert summary['devices_source'] == 'libvirt at {} (camvirtd did not answer)'.format(
        world.data['libvirt_uri'])
    assert [d['present'] for d in summary['devices'][first]] == [True, None]
    assert summary['devices'][second][0]['id'] == '0000:04:00.0'


def test_config_says_why_devices_are_unknown(make_world, tmp_path):
    world = make_world(domains=1, libvirt_uri='test+unix:///nonexistent/sock')
    data = dict(world.data, libvirt_uri='test+unix:///nonexistent/sock')
    env = world.client_env(tmp_path)
    world.pyro.shutdown()
    with open(env['CAMVIRTD_CONFIG_PATH'], 'w') as f:
        json.dump(data, f)
    result = camvirt(env, 'config')
    assert result.returncode == 0
    line = [x for x in result.stdout.splitlines() if x.startswith('devices from:')][0]
    assert line.startswith('devices from:     unknown: camvirtd did not answer, libvirt at '
                           'test+unix:///nonexistent/sock: ')
