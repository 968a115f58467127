from rockit.camvirt.wire.fairjobs import FairJobs


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
