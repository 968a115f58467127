"""End to end, a whole site in network namespaces (testworld/camvirt-site): who may command camvirtd,
by the real source address of its calls, and that the world leaves nothing behind."""

import ipaddress
import os
import signal

import pytest

from .e2e_world import process_alive, wait_until
from .site_world import needs_netns, netns_names, netns_pids, site_runs

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240), needs_netns]

SUCCEEDED, NOT_A_CONTROL_MACHINE = 0, 10
OFF, RUNNING = 'shut off', 'running'
@pytest.fixture
def make_site():
    yield from site_runs()


HOSTS = ('tcs', 'das1', 'das2', 'dashboard', 'switch', 'cam1', 'cam2', 'cam3', 'cam4')


def all_states(world):
    return {das: world.domstates(das) for das in ('das1', 'das2')}


def every(state):
    return {'das1': {'cam1': state, 'cam2': state}, 'das2': {'cam3': state, 'cam4': state}}


def test_the_site_world_puts_each_host_at_its_registry_address(make_site):
    world = make_site().start()
    assert world.namespaces() == sorted(world.prefix + '-' + h for h in HOSTS)
    registry = world.site['registry']
    for role, host in world.site['hosts'].items():
        address = ipaddress.ip_address(host['address'])
        assert address in ipaddress.ip_network('198.18.0.0/15')
        shown = world.run_in(role, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'site0').stdout
        assert ' {}/24 '.format(address) in shown
    # No way out of the world: no default route anywhere, only the links' own, and no host forwards.
    for role in list(world.site['hosts']) + list(world.site['cameras']):
        routes = [r.strip() for r in world.run_in(role, 'ip', '-4', 'route').stdout.splitlines()]
        assert routes and all(r.startswith('198.18.') and 'scope link' in r for r in routes), (role, routes)
        assert world.run_in(role, 'cat', '/proc/sys/net/ipv4/ip_forward').stdout.strip() == '0'
    with open(registry) as f:
        assert '"TestSiteDAS1": "198.18.0.11"' in f.read()
    # camvirtd listens on its registry address, in its host's namespace.
    for das in ('das1', 'das2'):
        listening = world.run_in(das, 'ss', '-Hltn').stdout
        assert '{}:{}'.format(world.site['hosts'][das]['address'], 9012 if das == 'das1' else 9013) in listening


def test_only_the_tcs_and_das_hosts_may_command_camvirtd(make_site):
    world = make_site().start()
    assert all_states(world) == every(OFF)

    # The dashboard host is not a control machine: refused, and nothing changes.
    assert world.opsd_results('initialize', from_host='dashboard') == {'das1': NOT_A_CONTROL_MACHINE,
                                                                       'das2': NOT_A_CONTROL_MACHINE}
    assert all_states(world) == every(OFF)
    for das in ('das1', 'das2'):
        assert world.camvirtd_says(das, r'refused initialize from 198\.18\.0\.20')

    # The TCS host is: opsd starts both hosts' VMs at once.
    assert world.opsd_results('initialize') == {'das1': SUCCEEDED, 'das2': SUCCEEDED}
    assert all_states(world) == every(RUNNING)
    assert world.camvirtd_says('das1', r'initialize.* by (\S+ at )?198\.18\.0\.10')

    assert world.opsd_results('shutdown', from_host='dashboard') == {'das1': NOT_A_CONTROL_MACHINE,
                                                                     'das2': NOT_A_CONTROL_MACHINE}
    assert all_states(world) == every(RUNNING)

    # Each DAS host may command the other.
    assert world.opsd_results('shutdown', from_host='das1', das=['das2']) == {'das2': SUCCEEDED}
    assert world.camvirtd_says('das2', r'shutdown.* by (\S+ at )?198\.18\.0\.11')
    assert world.opsd_results('shutdown', from_host='das2', das=['das1']) == {'das1': SUCCEEDED}
    assert world.camvirtd_says('das1', r'shutdown.* by (\S+ at )?198\.18\.0\.12')
    assert all_states(world) == every(OFF)


def world_processes(world):
    return {pid for pid in netns_pids(world.namespaces()) if process_alive(pid)}


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT], ids=['SIGTERM', 'SIGINT'])
def test_a_stopped_world_leaves_nothing_behind(make_site, signum):
    world = make_site().start()
    assert world.opsd_results('initialize') == {'das1': SUCCEEDED, 'das2': SUCCEEDED}
    processes = world_processes(world)
    assert len(processes) >= 2 + 2 + 4  # camvirtd and libvirtd on each DAS host, a camd in each VM

    assert world.stop(signum) == 0, world.process.describe()
    assert world.process.out.wait_for(r'^site stopped$', 5)
    assert world.namespaces() == []
    assert not [pid for pid in processes if process_alive(pid)]
    assert not os.path.exists(world.folder)


def test_a_world_that_fails_to_start_leaves_nothing_behind(make_site):
    world = make_site().start('--camvirtd', '/bin/false', expect_ready=False)
    assert world.process.wait(60) == 1, world.process.describe()
    assert world.process.err.wait_for(r'^camvirt-site: camvirtd on das[12] exited with status 1$', 5), \
        world.process.describe()
    assert world.prefix and netns_names(world.prefix) == []
    assert not os.path.exists(world.folder)


def test_a_world_stopped_while_starting_leaves_nothing_behind(make_site, tmp_path):
    # A camvirtd that never answers: the world waits for it until told to stop.
    never_ready = tmp_path / 'camvirtd'
    never_ready.write_text('#!/bin/sh\nexec sleep 60\n')
    never_ready.chmod(0o755)
    world = make_site().start('--camvirtd', str(never_ready), expect_ready=False)
    assert world.process.out.wait_for(r'^das[12]: libvirt ', 60), world.process.describe()
    world.process.signal(signal.SIGTERM)
    assert world.process.wait(30) == 1, world.process.describe()
    assert world.process.err.wait_for(r'^camvirt-site: asked to stop while starting$', 5)
    assert world.prefix and netns_names(world.prefix) == []
    assert not os.path.exists(world.folder)


def test_a_killed_world_is_cleaned_up_by_the_next_start_on_its_folder(make_site):
    first = make_site().start()
    assert first.opsd_results('initialize') == {'das1': SUCCEEDED, 'das2': SUCCEEDED}
    left_namespaces = first.namespaces()
    left_processes = world_processes(first)
    first.process.signal(signal.SIGKILL)
    assert first.process.wait(10) is not None
    # What a killed world leaves: its namespaces and the camds in them (libvirtd and camvirtd go with
    # their parent-death signal), its files.
    assert netns_names(first.prefix) == left_namespaces
    assert wait_until(lambda: [pid for pid in left_processes if process_alive(pid)], 5)
    assert os.path.exists(os.path.join(first.folder, 'site.json'))

    second = make_site(first.folder).start()
    assert second.prefix != first.prefix
    assert second.process.out.wait_for(r'^camvirt-site: removed what a killed world left in {}: {}'.format(
        first.folder, ', '.join(left_namespaces)), 5)
    assert netns_names(first.prefix) == []
    assert not [pid for pid in left_processes if process_alive(pid)]
    # The new world works.
    assert second.opsd_results('initialize') == {'das1': SUCCEEDED, 'das2': SUCCEEDED}

    assert second.stop() == 0
    assert second.namespaces() == []
    assert not os.path.exists(first.folder)


def test_a_second_world_on_a_folder_in_use_is_refused(make_site):
    first = make_site().start()
    second = make_site(first.folder).start(expect_ready=False)
    assert second.process.wait(30) == 1
    assert second.process.err.wait_for(r'a site world runs there already \(pid {}\)'.format(first.process.pid), 5)
    # The first world is untouched.
    assert first.opsd_results('initialize') == {'das1': SUCCEEDED, 'das2': SUCCEEDED}
