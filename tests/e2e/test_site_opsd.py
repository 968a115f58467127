"""End to end, a whole site in network namespaces with camds that start with their camera not initialised,
called as opsd calls them: its dusk and dawn sequences, and its `ops` shutdown script run while a camera
initialises. All traffic stays inside the world's namespaces."""

import os
import re
import subprocess
import sys

import pytest

from .e2e_world import wait_until
from .site_world import needs_netns, site_runs

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240), needs_netns]

OFF, RUNNING = 'shut off', 'running'
IDLE, DISABLED = 2, 0


@pytest.fixture
def make_site():
    yield from site_runs()


def steps(records, step):
    return [r for r in records if r.get('step') == step]


def test_opsd_dusk_and_dawn_against_camds_that_start_uninitialised(make_site):
    world = make_site().start('--uninitialised', '--camd-initialize-seconds', '1')
    assert {r['vm_active'] for r in world.dashboard(rounds=1)} == {False}  # VMs off: the offline reply
    dusk = world.callers('tcs', 'opsd', 'dusk', '--power-wait', '0.5', timeout=200)
    assert {r['das']: r['result'] for r in dusk if r.get('method') == 'initialize'} == {'das1': 0, 'das2': 0}
    # camvirtd's job ends when the camds answer ({'state': 0}): the cameras are initialised after it.
    order = [r.get('method') or r['step'] for r in dusk]
    assert order.index('power on') > max(i for i, m in enumerate(order) if m == 'initialize')
    initialised = steps(dusk, 'cam_initialize')
    assert {r['camera'] for r in initialised if r['result'] == 0} == {'cam1', 'cam2', 'cam3', 'cam4'}, dusk
    records = world.dashboard(rounds=1)
    assert {(r['camera'], r['state'], r['vm_active']) for r in records} == {
        (cam, IDLE, True) for cam in ('cam1', 'cam2', 'cam3', 'cam4')}, records

    dawn = world.callers('tcs', 'opsd', 'dawn', timeout=200)
    assert {r['camera']: r['result'] for r in steps(dawn, 'camd shutdown')} == {
        'cam1': 0, 'cam2': 0, 'cam3': 0, 'cam4': 0}, dawn
    assert {r['das']: r['result'] for r in dawn if r.get('method') == 'shutdown'} == {'das1': 0, 'das2': 0}
    assert world.domstates('das1') == {'cam1': OFF, 'cam2': OFF}


def test_the_ops_shutdown_script_against_a_camera_initialising_fails_rather_than_skip_it(make_site):
    world = make_site().start('--uninitialised', '--camd-initialize-seconds', '15')
    assert {das: r['result'] for das, r in world.opsd('initialize').items()} == {'das1': 0, 'das2': 0}
    records = world.dashboard(rounds=1)
    assert {(r['camera'], r['state'], r['vm_active']) for r in records} == {
        (cam, DISABLED, True) for cam in ('cam1', 'cam2', 'cam3', 'cam4')}, records
    # opsd's cam_initialize of cam1, from its DAS host: the camd holds its camera lock for 15 s.
    initialising = subprocess.Popen(
        ['ip', 'netns', 'exec', world.ns('das1'), sys.executable, '-m', 'testworld.site.callers', '--site',
         os.path.join(world.folder, 'site.json'), 'camd', 'initialize', 'cam1', '--timeout', '60'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: 'error' in world.dashboard(rounds=1)[0], 10)  # cam1's camd is busy
        ops = world.callers('tcs', 'ops-shutdown', timeout=120)
        first = ops[0]
        assert first['camera'] == 'cam1' and first['vm_active'] is None
        # camd not answering within camera_timeout, or a call in flight it has not answered for longer.
        assert re.match(r'TimeoutError: camera cam1: camd .* (did not answer within 1 s|has not answered for [\d.]+ s)',
                        first['error']), ops
        assert ops[-1] == {'caller': 'ops', 'outcome': 'FAILED', 'step': 'warming cameras'}
        # Not a VM shut down under a camera it skipped.
        assert world.domstates('das1') == {'cam1': RUNNING, 'cam2': RUNNING}
        out, _ = initialising.communicate(timeout=60)
        assert '"result": 0' in out, out
    finally:
        if initialising.poll() is None:
            initialising.kill()
            initialising.wait(10)
    ops = world.callers('tcs', 'ops-shutdown', timeout=120)
    assert all(r['vm_active'] is True for r in steps(ops, 'vm_active')), ops
    assert {r['camera'] for r in steps(ops, 'camd shutdown') if r['error'] is None} == {
        'cam1', 'cam2', 'cam3', 'cam4'}, ops
    assert ops[-1] == {'caller': 'ops', 'outcome': 'COMPLETE'}
    assert world.domstates('das2') == {'cam3': OFF, 'cam4': OFF}
