from rockit.camvirt.wire.refusals import FLOOD_REFUSALS, LINES_PER_INTERVAL, LINES_PER_SOURCE, RefusalLog
from testworld.support import ListLog


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_flood_from_one_source_logs_a_few_lines_and_a_summary():
    log, clock = ListLog(), Clock()
    refusals = RefusalLog(log, interval=10, clock=clock)
    for _ in range(33000):
        refusals.refused('127.0.0.2', 'initialize', 'not a control machine')
    refusals.refused('127.0.0.2', 'connection', 'idle', 'no complete request within 10 s')
    assert len(log.lines) == LINES_PER_SOURCE
    assert log.lines[0] == ('warning', 'refused initialize from 127.0.0.2: not a control machine')
    clock.now += 10
    refusals.flush_due()
    summary = log.lines[-1][1]
    assert summary.startswith('refusals from 127.0.0.2 in the last 10 s: 33001 (')
    assert 'initialize: not a control machine 33000' in summary and 'connection: idle 1' in summary
    assert '{} not logged one by one'.format(33001 - LINES_PER_SOURCE) in summary


def test_each_source_has_its_own_lines_within_a_bound_for_all():
    log = ListLog()
    refusals = RefusalLog(log, interval=10, clock=Clock())
    refusals.refused('127.0.0.2', 'shutdown', 'not a control machine')
    refusals.refused('127.0.0.3', 'shutdown', 'not a control machine')
    assert len(log.lines) == 2
    for i in range(1000):
        refusals.refused('10.0.{}.{}'.format(i // 256, i % 256), 'connection', 'idle')
    assert len(log.lines) == LINES_PER_INTERVAL


def test_a_quiet_interval_writes_no_summary_and_lines_start_again():
    log, clock = ListLog(), Clock()
    refusals = RefusalLog(log, interval=10, clock=clock)
    refusals.refused('127.0.0.2', 'initialize', 'not a control machine')
    clock.now += 11
    refusals.flush_due()
    assert len(log.lines) == 1  # everything was logged one by one: nothing to sum up
    for _ in range(LINES_PER_SOURCE):
        refusals.refused('127.0.0.2', 'initialize', 'not a control machine')
    assert len(log.lines) == 1 + LINES_PER_SOURCE


def test_details_cannot_forge_or_bloat_a_line():
    log = ListLog()
    RefusalLog(log).refused('127.0.0.2', 'initialize', 'unknown domain', 'x\nERROR: forged' + 'y' * 10 ** 6)
    (_, line), = log.lines
    assert '\n' not in line and len(line) < 500


def test_a_source_refused_too_often_is_flooding_until_the_interval_ends():
    log, clock = ListLog(), Clock()
    refusals = RefusalLog(log, interval=10, clock=clock)
    for _ in range(FLOOD_REFUSALS - 1):
        refusals.refused('127.0.0.2', 'initialize', 'not a control machine')
    assert not refusals.flooding('127.0.0.2')
    refusals.refused('127.0.0.2', 'initialize', 'not a control machine')
    assert refusals.flooding('127.0.0.2') and not refusals.flooding('127.0.0.3')
    clock.now += 10
    refusals.flush_due()
    assert not refusals.flooding('127.0.0.2')
