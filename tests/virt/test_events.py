"""The dispatch thread: hand-offs run in order, one at a time; flush waits for what came before."""

import threading
import time

from rockit.camvirt.virt.events import Dispatch
from testworld.support import ListLog, deadline


def test_calls_run_in_the_order_posted_and_flush_waits_for_them():
    dispatch, seen, gate = Dispatch(ListLog()), [], threading.Event()
    dispatch.start()
    try:
        dispatch.post(gate.wait, 5)
        for i in range(50):
            dispatch.post(seen.append, i)
        assert not dispatch.flush(time.monotonic() + 0.1)  # still held at the gate: the wait says so
        gate.set()
        assert dispatch.flush(deadline(5))
        assert seen == list(range(50))
    finally:
        dispatch.stop()


def test_flush_on_the_dispatch_thread_itself_does_not_wait_on_itself():
    dispatch, results = Dispatch(ListLog()), []
    dispatch.start()
    try:
        dispatch.post(lambda: results.append(dispatch.flush(deadline(5))))
        assert dispatch.flush(deadline(5)) and results == [True]
    finally:
        dispatch.stop()


def test_stop_runs_what_is_queued_and_ends_the_thread():
    dispatch, seen = Dispatch(ListLog()), []
    dispatch.start()
    dispatch.post(lambda: seen.append(threading.current_thread()))
    dispatch.post(seen.append, 'last')
    dispatch.stop()
    assert seen[1] == 'last' and not seen[0].is_alive()
