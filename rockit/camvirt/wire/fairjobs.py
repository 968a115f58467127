"""Jobs handed to a pool of workers in turn by source, so that one source cannot take them all."""

import collections
import contextlib
import threading


class FairJobs:
    """Jobs queued per source; take() hands them out round-robin by source, never more than
    `per_source` of one source at once."""

    def __init__(self, per_source):
        self._per_source = per_source
        self._cond = threading.Condition()
        self._queues = collections.OrderedDict()  # source -> deque of jobs, in round-robin order
        self._running = collections.Counter()
        self._closed = False

    def put(self, source, job):
        with self._cond:
            self._queues.setdefault(source, collections.deque()).append(job)
            self._cond.notify()

    def waiting(self):
        """Whether any job is queued (of any source, this worker's own included)."""
        with self._cond:
            return bool(self._queues)

    def take(self):
        """(source, job), waiting for one; None once closed."""
        with self._cond:
            while not self._closed:
                for source in list(self._queues):
                    if self._running[source] < self._per_source:
                        queue = self._queues.pop(source)
                        job = queue.popleft()
                        if queue:
                            self._queues[source] = queue  # to the back of the round
                        self._running[source] += 1
                        return source, job
                self._cond.wait()
            return None

    def done(self, source):
        with self._cond:
            self._running[source] -= 1
            if not self._running[source]:
                del self._running[source]
            if source in self._queues:
                self._cond.notify()  # its next job may go now (waking every idle worker would be a herd)

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class FairSlots:
    """`count` slots (the right to parse a message) handed to waiters in turn by source, so that a
    source with many waiters makes another wait for one of its turns, not for all of them. A freed
    slot goes straight to the next waiter (an event each, no herd of wake-ups)."""

    def __init__(self, count):
        self._lock = threading.Lock()
        self._free = count
        self._waiting = collections.OrderedDict()  # source -> deque of events, in round-robin order

    @contextlib.contextmanager
    def held(self, source):
        self._acquire(source)
        try:
            yield
        finally:
            self._release()

    def waiting(self):
        with self._lock:
            return sum(len(queue) for queue in self._waiting.values())

    def _acquire(self, source):
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            handed = threading.Event()
            self._waiting.setdefault(source, collections.deque()).append(handed)
        handed.wait()  # _release() hands this slot over: it is never freed in between

    def _release(self):
        with self._lock:
            if not self._waiting:
                self._free += 1
                return
            source, queue = self._waiting.popitem(last=False)
            handed = queue.popleft()
            if queue:
                self._waiting[source] = queue  # to the back of the round
        handed.set()
