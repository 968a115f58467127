"""Crash awareness decisions: what counts as an unexpected stop, and the hourly restart budget."""

from rockit.camvirt.constants import VMState
from rockit.camvirt.crashwatch import HOUR, CrashWatch


def test_only_domains_expected_to_run_can_stop_unexpectedly():
    watch = CrashWatch(restarts_per_hour=3)
    assert not watch.observe('cam1', VMState.ShutOff, 100.0)
    watch.expect_running(['cam1'])
    assert not watch.observe('cam1', VMState.Unknown, 101.0)  # libvirt unreachable says nothing
    assert watch.observe('cam1', VMState.Crashed, 102.0)
    assert watch.unexpected_stop('cam1') == {'state': VMState.Crashed, 'time': 102.0}
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
