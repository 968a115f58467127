"""A state write stuck on a frozen disk delays neither a crash restart nor an opsd initialize by more
than a bounded wait per change (statefile.SAVE_WAIT): the state file's writer thread writes the latest
state once the disk answers, while the crash watch (on the dispatch thread) and the commands go on.
The disk is frozen for 15 s (frozendisk.py)."""

import pytest

from .frozendisk import needs_frozen_disk, run_frozen

pytestmark = [pytest.mark.e2e, needs_frozen_disk]

BODY = '''
world = World(conn, domains=2, memory_path=path, initialize_timeout=5,
              extra_config={'restart_crashed': True, 'restart_crashed_per_hour': 3})
first, second = world.domain_names
try:
    assert world.call('initialize') == 0
    assert world.call('shutdown', [second], False) == 0
    freeze()
    thawing = threading.Timer(15, thaw)
    thawing.start()
    try:
        world.domain(first).destroy()  # a crash: restarted within about initialize_timeout
        found['crash seen'] = wait_until(lambda: world.hypervisor.state(first) == VMState.ShutOff, 5)
        found['crash restarted while frozen'] = wait_until(
            lambda: world.hypervisor.state(first) == VMState.Running, 8)
        began = time.monotonic()
        try:
            status = world.call('initialize', [second], timeout=30)
        except Exception as e:
            status = repr(e)
        found['opsd initialize status'] = status
        found['opsd initialize seconds'] = round(time.monotonic() - began, 1)
    finally:
        thawing.join()
    found['crash restarted once thawed'] = wait_until(lambda: world.hypervisor.state(first) == VMState.Running, 15)
finally:
    world.close()
'''


def test_a_stuck_state_write_delays_neither_a_crash_restart_nor_an_opsd_initialize():
    found = run_frozen(BODY, watchdog=45)
    assert found['crash restarted once thawed']
    assert found['crash restarted while frozen'], found
    # initialize_timeout is 5 s: its caller must have its answer within that (and a little), frozen disk or not.
    assert found['opsd initialize seconds'] < 5 + 2, found
