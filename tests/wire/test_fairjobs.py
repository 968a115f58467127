import threading

from rockit.camvirt.wire.fairjobs import FairJobs, FairSlots
from testworld.support import wait_until


def test_fair_jobs_take_sources_in_turn_within_their_limit():
    jobs = FairJobs(per_source=1)
    for job in ('a1', 'a2', 'a3'):
        jobs.put('a', job)
    jobs.put('b', 'b1')
    assert jobs.take() == ('a', 'a1')
    assert jobs.take() == ('b', 'b1')  # 'a' is at its limit
    jobs.done('a')
    assert jobs.take() == ('a', 'a2')
    jobs.close()
    assert jobs.take() is None


def test_parse_slots_go_in_turn_by_source():
    slots = FairSlots(1)
    order = []
    started = []

    def parse(source):
        started.append(source)
        with slots.held(source):
            order.append(source)

    with slots.held('first'):
        threads = []
        for source in ['flood'] * 5 + ['dashboard']:
            thread = threading.Thread(target=parse, args=(source,))
            thread.start()
            threads.append(thread)
            count = len(threads)
            assert wait_until(lambda: len(started) == count and slots.waiting() == count, 5)  # noqa: B023
    for thread in threads:
        thread.join(timeout=5)
    # The dashboard waits for one of the flood's turns, not for all five.
    assert order == ['flood', 'dashboard', 'flood', 'flood', 'flood', 'flood']


def test_waiting_says_whether_any_job_is_queued_even_of_a_source_at_its_limit():
    jobs = FairJobs(per_source=1)
    assert not jobs.waiting()
    jobs.put('a', 1)
    jobs.put('a', 2)
    assert jobs.waiting()
    assert jobs.take() == ('a', 1)
    assert jobs.waiting()  # 'a' is at its limit, but its job waits all the same
    jobs.done('a')
    assert jobs.take() == ('a', 2)
    assert not jobs.waiting()
