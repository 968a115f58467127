"""End to end: commands for some domains only, unknown domain names, and the wire calls the rockit
clients make, unchanged."""


import Pyro4
import pytest

from .e2e_world import OFFLINE, camera_labels, diagnose, domain_states, since

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def test_one_vm_at_a_time_leaves_the_others_alone(make_process_world):
    world = make_process_world().start()

    init = world.camvirt('init', 'cam1')
    assert init.returncode == 0, init.stdout + init.stderr
    assert (world.domstate('cam1'), world.domstate('cam2')) == ('running', 'shut off')

    assert world.camvirt('init', 'cam2').returncode == 0
    kill = world.camvirt('kill', 'cam1')
    assert kill.returncode == 0, kill.stdout + kill.stderr
    assert (world.domstate('cam1'), world.domstate('cam2')) == ('shut off', 'running')

    before = since(world.status(), 'cam2')
    restart = world.camvirt('restart', 'cam2')
    assert restart.returncode == 0, restart.stdout + restart.stderr
    status = world.status()
    assert domain_states(status) == {'cam1': 'shut off', 'cam2': 'running'}
    assert camera_labels(status) == {'cam1': 'OFFLINE', 'cam2': 'IDLE'}, diagnose(world, 'cam2')
    assert since(status, 'cam2') > before  # it really went down and up again
    assert world.sandbox.out.wait_for(r'^cam2: powered off', 5)


def test_an_unknown_domain_gets_its_own_code_and_changes_nothing(make_process_world):
    world = make_process_world().start()
    result = world.camvirt('init', 'cam1', 'cam9')
    assert result.returncode == 3, result.stdout + result.stderr
    # camvirt itself names it and the config's domains, and sends nothing.
    assert "unknown domain 'cam9'" in result.stderr and 'its domains: cam1, cam2' in result.stderr
    assert (world.domstate('cam1'), world.domstate('cam2')) == ('shut off', 'shut off')

    # The same on the wire, and the rockit clients' no-argument calls are as before.
    with world.proxy(timeout=30) as opsd:
        assert opsd.shutdown(['cam9']) == 3
        assert opsd.initialize(['cam2']) == 0
        assert (world.domstate('cam1'), world.domstate('cam2')) == ('shut off', 'running')
        assert opsd.initialize() == 0
        assert opsd.shutdown() == 0
    assert (world.domstate('cam1'), world.domstate('cam2')) == ('shut off', 'shut off')
    assert "refused shutdown from 127.0.0.1: unknown domain: 'cam9'" in world.camvirtd.out.text()


def test_the_old_wire_calls_are_unchanged(make_process_world):
    world = make_process_world().start()
    with Pyro4.Proxy(world.pyro_uri('e2e_camvirt')) as opsd:
        opsd._pyroTimeout = 30
        assert opsd.initialize() == 0
        assert opsd.report_camera_status('cam1')['vm_active'] is True
        assert opsd.shutdown() == 0
        assert opsd.report_camera_status('cam1') == OFFLINE
