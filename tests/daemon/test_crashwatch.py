"""Crash awareness decisions: what counts as an unexpected stop, and the hourly restart budget."""

import threading

from rockit.camvirt.daemon.crashwatch import (
    HOUR,
    STOPPED,
    STOPPED_WHILE_DOWN,
    STOPPED_WHILE_DOWN_REBOOT,
    CrashWatch,
    RestartQueue,
    recent_restarts,
)
from rockit.camvirt.shared.constants import VMState


def test_only_domains_expected_to_run_can_stop_unexpectedly():
    watch = CrashWatch(restarts_per_hour=3)
    assert not watch.observe('cam1', VMState.ShutOff, 100.0)
    watch.expect_running(['cam1'])
    assert not watch.observe('cam1', VMState.Unknown, 101.0)  # libvirt unreachable says nothing
    assert watch.observe('cam1', VMState.Crashed, 102.0)
    assert watch.unexpected_stop('cam1') == {'state': VMState.Crashed, 'time': 102.0, 'reason': STOPPED}
    assert not watch.observe('cam1', VMState.ShutOff, 103.0)  # reported once per stop
    watch.expect_running(['cam1'])
    assert watch.unexpected_stop('cam1') is None
    watch.expect_off(['cam1'])
    assert not watch.observe('cam1', VMState.ShutOff, 104.0)


def test_restart_budget_is_per_rolling_hour():
    watch = CrashWatch(restarts_per_hour=2)
    assert watch.take_restart(0.0)
    assert watch.take_restart(10.0)
    assert not watch.take_restart(20.0)
    assert watch.take_restart(HOUR + 1.0)
    assert not watch.take_restart(HOUR + 2.0)


def test_every_change_is_announced_and_a_snapshot_comes_back_whole():
    changes = []
    watch = CrashWatch(restarts_per_hour=3, on_change=lambda: changes.append(1))
    watch.expect_running(['cam1', 'cam2'], now=50.0)
    watch.expect_running(['cam1'], now=60.0)  # still running since the first time
    assert watch.observe('cam2', VMState.ShutOff, 70.0)
    assert watch.take_restart(80.0)
    assert len(changes) == 4
    snapshot = watch.snapshot(90.0)
    assert snapshot == {'expected': {'cam1': 50.0}, 'restarts': [80.0],
                        'stops': {'cam2': {'state': VMState.ShutOff, 'time': 70.0, 'reason': STOPPED}}}
    again = CrashWatch(restarts_per_hour=3)
    again.restore(snapshot['expected'], snapshot['stops'], snapshot['restarts'], 100.0)
    assert again.snapshot(100.0) == snapshot
    # An hour on, the restart no longer counts.
    assert again.snapshot(80.0 + HOUR)['restarts'] == []


def test_a_restored_domain_found_off_stopped_while_camvirtd_was_down():
    watch = CrashWatch(restarts_per_hour=3)
    watch.restore({'cam1': 10.0, 'cam2': 10.0, 'cam3': 10.0}, {}, [], 100.0)
    assert not watch.observe('cam1', VMState.Unknown, 101.0)  # libvirt not reached yet: still open
    assert watch.observe('cam1', VMState.ShutOff, 102.0)
    assert watch.unexpected_stop('cam1')['reason'] == STOPPED_WHILE_DOWN
    assert not watch.observe('cam2', VMState.Running, 102.0)  # found running: all is well
    assert watch.observe('cam2', VMState.Crashed, 103.0)  # a later stop is an ordinary one
    assert watch.unexpected_stop('cam2')['reason'] == STOPPED
    rebooted = CrashWatch(restarts_per_hour=3)
    rebooted.restore({'cam1': 10.0}, {}, [], 100.0, host_restarted=True)
    assert rebooted.observe('cam1', VMState.ShutOff, 101.0)
    assert rebooted.unexpected_stop('cam1')['reason'] == STOPPED_WHILE_DOWN_REBOOT


def test_restored_restart_times_keep_counting_against_the_budget():
    watch = CrashWatch(restarts_per_hour=2)
    watch.restore({}, {}, [10.0, 5000.0], 100.0)  # 5000: the clock went back; counts as now
    assert not watch.take_restart(200.0)
    assert watch.take_restart(10.0 + HOUR)


def spawn(function):
    threading.Thread(target=function, daemon=True).start()


def test_domains_that_stop_together_restart_in_one_batch():
    batches, release, started = [], threading.Event(), threading.Event()
    done = threading.Condition()

    def restart(names):
        with done:
            batches.append(names)
            done.notify_all()
        started.set()
        release.wait(5)

    queue = RestartQueue(restart, ['cam1', 'cam2', 'cam3'], spawn)
    queue.add('cam2')
    assert started.wait(5)
    queue.add('cam3')  # while cam2's restart runs
    queue.add('cam1')
    release.set()
    with done:
        assert done.wait_for(lambda: len(batches) == 2, timeout=5)
    assert batches == [['cam2'], ['cam1', 'cam3']]


def test_the_queue_waits_until_ready_before_taking_what_is_pending():
    ready, batches = threading.Event(), []
    done = threading.Event()
    queue = RestartQueue(lambda names: (batches.append(names), done.set()), ['cam1', 'cam2'], spawn, ready.wait)
    queue.add('cam2')
    queue.add('cam1')  # reported while the first is still waiting for libvirt
    ready.set()
    assert done.wait(5)
    assert batches == [['cam1', 'cam2']]


def test_a_shutdown_deals_with_earlier_unexpected_stops():
    watch = CrashWatch(3)
    watch.expect_running(['cam1'])
    assert watch.observe('cam1', VMState.ShutOff, 10.0) is not None
    watch.expect_off(['cam1'])  # the operator's kill: the VM is meant to be off now
    assert watch.unexpected_stop('cam1') is None


def test_restart_times_in_the_future_count_as_now_while_running_too():
    # Restarts taken while the clock ran 30 days ahead; then NTP steps it back.
    ahead = 30 * 24 * HOUR
    watch = CrashWatch(restarts_per_hour=2)
    assert watch.take_restart(ahead + 10.0) and watch.take_restart(ahead + 20.0)
    assert not watch.take_restart(100.0)  # the budget of the hour since the step back is spent
    assert watch.take_restart(100.0 + HOUR)  # an hour later, not 30 days later
    assert all(t <= 100.0 + HOUR for t in watch.snapshot(100.0 + HOUR)['restarts'])


def test_recent_restarts_keep_the_last_hour_oldest_first_and_the_future_as_now():
    now = 10000.0
    assert recent_restarts([now - 10, now - HOUR, now + 50, now - HOUR + 1], now) == [now - HOUR + 1, now - 10, now]
    assert recent_restarts([], now) == []
