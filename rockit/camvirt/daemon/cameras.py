"""The camera side: asking camera daemons (camd) for report_status(), every wait bounded as a whole.

A real camd is a Pyro4 thread-pool server whose workers are held one per open connection, and whose
report_status() waits on the camera lock, held for about a minute while the camera initialises. A
client that gives up and asks again on a new connection leaves a worker behind each time, until the
camd refuses everyone. So camvirtd makes at most one call in flight to each camd, whoever asks:

- a query that finds a call in flight waits on that call's answer (single flight), for its own wait;
  a dashboard's query that finds the call camera_timeout old already does not wait on it: a camd that
  has not answered for longer is not waited on again by every query (each would hold one of
  camvirtd's workers), while a slow camd's answer still reaches the queries that came during its call;
- a caller's wait (camera_timeout, or what is left of a command's deadline) is its own: the call itself
  runs on until camd answers or CALL_CAP passes, then the connection is dropped;
- each camd has one kept connection, used by one call at a time and closed after KEEP_IDLE seconds
  without a call;
- camd's reply is read against a deadline for the whole call (connect, handshake and reply together:
  a camd sending one byte at a time does not stretch it) and refused when it is compressed, batched or
  larger than boundedcall.MAX_REPLY_BYTES, before its body is read.

So camvirtd holds at most one camd worker at a time, two for the moment after a call reached its cap
while camd still holds the first. The calls are made by one thread per camd (CamdCaller), which ends
after KEEP_IDLE seconds without work; close() ends them all.
"""

import threading
import time

from .boundedcall import BoundedConnection, CallError, CallTimeout

# How often initialize() asks a camd that refused or dropped the connection. A refused connection costs
# a few microseconds on loopback and one SYN on the network, and this bounds how late we notice readiness.
READINESS_RETRY_INTERVAL = 0.01
# How long a camd first asked at (or past) the deadline of a command may take to answer.
LAST_LOOK = 0.25
# The longest one camd call may take, connect to reply: longer than a camera initialisation holds the
# camera lock (about a minute), so that a camd busy initialising is not given a second worker; and it ends
# a camd that drips its reply. Callers never wait this long: each waits for its own timeout.
CALL_CAP = 120.0
# A kept connection is closed after this long without a call (the dashboard asks every ~10 s; the
# readiness probe every few milliseconds).
KEEP_IDLE = 3.0
# What close() waits for the callers' threads to end.
CLOSE_TIMEOUT = 2.0

class Answer:
    """What a caller got: camd's status dict, or why not (`problem`, a phrase such as "did not answer
    within 1.0 s"); `timed_out` when the call was still in flight when the caller's wait ended."""

    def __init__(self, status=None, problem=None, timed_out=False):
        self.status = status
        self.problem = problem
        self.timed_out = timed_out

    @property
    def answered(self):
        return self.status is not None


NOT_ASKED = Answer()  # a wait that gave up before its first try


class _Call:
    """One report_status() call to a camd, which any number of callers wait on."""

    def __init__(self):
        self.began = time.monotonic()
        self.done = threading.Event()
        self.status = None
        self.problem = None

    def finish(self, status, problem):
        self.status, self.problem = status, problem
        self.done.set()


class CamdCaller:
    """The one caller of one camd: makes its calls one at a time on a thread of its own, on one kept
    connection. The thread ends after KEEP_IDLE seconds without a call, closing the connection."""

    def __init__(self, address):
        self.address = address
        self._cond = threading.Condition()
        self._call = None       # the call in flight, or waiting to be made
        self._thread = None
        self._connection = BoundedConnection(address)
        self._closed = False
        self.calls = 0          # calls made to camd (for the benchmark and tests)

    def ask(self, wait, from_call_start=False):
        """camd's answer, waiting at most `wait` seconds on the call in flight (a new one if none);
        from_call_start (a query): not at all when that call is `wait` old already."""
        with self._cond:
            if self._closed:
                return Answer(problem='is not asked: camvirtd is stopping')
            call = self._call
            if call is None:
                call = self._call = _Call()
                if self._thread is None:
                    self._thread = threading.Thread(target=self._serve, daemon=True,
                                                    name='camd-' + self.address.object_id)
                    self._thread.start()
                self._cond.notify_all()
        age = time.monotonic() - call.began
        if from_call_start and age >= wait:  # a query finding the call older than its wait: not waited on again
            if not call.done.is_set():
                return Answer(problem='has not answered for {:g} s'.format(round(age, 1)), timed_out=True)
        elif not call.done.wait(wait):
            return Answer(problem='did not answer within {:g} s'.format(round(wait, 1)), timed_out=True)
        return Answer(call.status, call.problem)

    def _serve(self):
        while True:
            with self._cond:
                idle_until = time.monotonic() + KEEP_IDLE
                while self._call is None and not self._closed:
                    remaining = idle_until - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                call = self._call
                if call is None or self._closed:
                    self._thread = None
                    self._connection.close()
                    if call is not None:
                        self._call = None
                        call.finish(None, 'is not asked: camvirtd is stopping')
                    return
            status, problem = self._make()
            with self._cond:
                self._call = None
            call.finish(status, problem)

    def _make(self):
        """(status dict, None) or (None, why not): one call within CALL_CAP. A kept connection that
        fails before camd answered says nothing of camd now (camd restarted): asked once more anew."""
        deadline = time.monotonic() + CALL_CAP
        self.calls += 1
        for attempt in (1, 2):
            reused = self._connection.open
            try:
                status = self._connection.call('report_status', (), deadline)
            except CallTimeout as e:
                self._connection.close()
                return None, '{} (gave up after {:g} s)'.format(e, CALL_CAP)
            except CallError as e:
                self._connection.close()
                if reused and attempt == 1 and not self._closed:
                    continue
                return None, str(e)
            if not isinstance(status, dict):
                return None, 'sent a {}, not a status dict'.format(type(status).__name__)
            return status, None
        return None, 'cannot be asked'  # not reached: the second attempt always returns

    def forget(self):
        """Its camd stopped or is new: a call in flight ends now, and the kept connection goes."""
        with self._cond:
            self._connection.abort()

    def close(self):
        """Ends the thread: a call in flight ends now."""
        with self._cond:
            self._closed = True
            thread = self._thread
            self._connection.abort()
            self._cond.notify_all()
        if thread is not None:
            thread.join(CLOSE_TIMEOUT)


class CameraProbe:
    """Asks camds for report_status(): one CamdCaller per camd, each caller's wait its own."""

    def __init__(self, timeout):
        self.timeout = timeout
        self._lock = threading.Lock()
        self._callers = {}  # uri -> CamdCaller
        self._closed = False

    def _caller(self, address):
        with self._lock:
            caller = self._callers.get(address.uri)
            if caller is None:
                caller = self._callers[address.uri] = CamdCaller(address)
                if self._closed:
                    caller.close()  # a query after close(): answered at once, no thread started
            return caller

    def query(self, address):
        """A query's Answer (the dashboard's, camvirt status's): within camera_timeout, and at once when
        the call in flight is older than that already (camd has not answered it within camera_timeout)."""
        return self._caller(address).ask(self.timeout, from_call_start=True)

    def ask(self, address, wait=None):
        """An Answer, within `wait` seconds (default: camera_timeout), however old the call in flight."""
        return self._caller(address).ask(self.timeout if wait is None else wait)

    def status(self, address, wait=None):
        """camd's report_status() dict, or None when it gives none within `wait` (camera_timeout)."""
        return self.ask(address, wait).status

    def calls(self, address):
        """How many calls were made to a camd so far."""
        return self._caller(address).calls

    def forget(self, address):
        """Drops the connection to a camd (a call in flight on it ends), e.g. when its VM stopped."""
        with self._lock:
            caller = self._callers.get(address.uri)
        if caller is not None:
            caller.forget()

    def close(self):
        with self._lock:
            self._closed = True
            callers = list(self._callers.values())
        for caller in callers:
            caller.close()


def wait_until_answering(probe, address, deadline, give_up):
    """Asks one camd until it answers or time.monotonic() passes deadline, or give_up() is true: one
    call at a time (a call in flight is waited on, never doubled). Asked at least once, for at least
    LAST_LOOK seconds: a domain started at the last moment may have its camd up already. Returns the
    last Answer (answered, or why its last try failed: this wait's own, not a dashboard query's; no
    problem when it gave up before asking)."""
    answer = NOT_ASKED
    while not give_up():
        remaining = deadline - time.monotonic()
        if remaining <= 0 and answer is not NOT_ASKED:
            return answer
        answer = probe.ask(address, min(probe.timeout, max(remaining, LAST_LOOK if answer is NOT_ASKED else 0)))
        if answer.answered:
            return answer
        if not answer.timed_out:  # refused or dropped at once: camd is not up yet
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return answer
            time.sleep(min(READINESS_RETRY_INTERVAL, remaining))
    return answer
