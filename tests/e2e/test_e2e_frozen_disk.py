"""A state file write that blocks for 20 s on a frozen filesystem (fsfreeze) costs camvirtd neither its
libvirt events nor its status: the camvirtd of the in-process tests, remembering on a disk the test
freezes (frozendisk.py)."""

import pytest

from .frozendisk import needs_frozen_disk, run_frozen

pytestmark = [pytest.mark.e2e, needs_frozen_disk]

BODY = '''
def remembered_stops():
    with open(path) as f:
        return sorted(json.load(f).get('stops', {}))


world = World(conn, domains=2, memory_path=path)
first, second = world.domain_names


def state_is(name, state):
    return wait_until(lambda: world.hypervisor.state(name) == state, 5)


try:
    assert world.call('initialize') == 0
    freeze()
    thaw_at = time.monotonic() + 20
    try:
        world.domain(first).destroy()  # an unexpected stop: the crash watch's write of it blocks
        found['stop followed'] = state_is(first, VMState.ShutOff)
        found['write blocked'] = remembered_stops() == []  # the file on disk is the one before
        found['status while frozen'] = world.call('report_status', timeout=5)['domains'][0]['unexpected_stop'] \\
            is not None
        found['history while frozen'] = len(world.call('report_history', timeout=5)) == 1
        while time.monotonic() < thaw_at:  # libvirt's events keep coming in all the while
            world.domain(second).destroy()
            found.setdefault('events while frozen', True)
            found['events while frozen'] &= state_is(second, VMState.ShutOff)
            world.domain(second).create()
            found['events while frozen'] &= state_is(second, VMState.Running)
        found['connected'] = world.hypervisor.connected
    finally:
        thaw()
    found['written once thawed'] = wait_until(lambda: first in remembered_stops(), 10)
finally:
    world.close()
'''


def test_a_state_write_stuck_on_a_frozen_disk_costs_neither_libvirt_events_nor_status():
    found = run_frozen(BODY, watchdog=60)
    assert found == {'stop followed': True, 'write blocked': True, 'status while frozen': True,
                     'history while frozen': True, 'events while frozen': True, 'connected': True,
                     'written once thawed': True}
