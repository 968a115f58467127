import ipaddress

from rockit.camvirt.shared.addresses import ControlMachines, canonical, normalised


def test_ipv4_mapped_ipv6_is_its_ipv4_address():
    assert normalised('::ffff:127.0.0.1') == ipaddress.ip_address('127.0.0.1')
    assert '::ffff:10.2.6.160' in ControlMachines(['10.2.6.160'])
    assert '10.2.6.160' in ControlMachines(['::ffff:10.2.6.160'])


def test_ipv6_in_any_spelling_is_one_address():
    control = ControlMachines(['0000:0000:0000:0000:0000:0000:0000:0001', 'FE80::1'])
    assert '::1' in control and 'fe80::1' in control and 'fe80::1%eth0' in control
    assert canonical('0:0:0:0:0:0:0:1') == '::1'


def test_other_addresses_and_non_addresses_are_not_control_machines():
    control = ControlMachines(['127.0.0.1', 'not-an-ip'])
    assert len(control) == 1
    for caller in ('127.0.0.2', '::2', None, '', 'camvirtd', '127.0.0.1\n'):
        assert caller not in control, caller


def test_canonical_leaves_a_name_alone():
    assert canonical('LocalHost') == 'LocalHost' and canonical('::ffff:127.0.0.2') == '127.0.0.2'
