"""Jobs handed to a pool of workers in turn by source, so that one source cannot take them all."""

import collections
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
