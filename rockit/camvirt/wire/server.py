"""camvirtd's Pyro4 server, hardened against hostile and careless callers on its network port.

Pyro4's own thread-pool server gives each connection a worker thread for as long as it is open and
reads whatever size a message header declares: 200 idle sockets lock everyone out and one 2 GiB
header reserves 2 GiB. This server keeps Pyro4's protocol and request handling (the Daemon's
_handshake and handleRequest, so plain Pyro4 proxies see no difference) and changes who waits for what:

- one selector thread (epoll) accepts connections and reads messages into memory, header first
  (wireframes.read_message): a message whose header declares more than MAX_MESSAGE_SIZE is refused
  before its body is read, and one that is not what rockit's callers send (a CONNECT asking for
  metadata, then INVOKEs with no flags, in serpent, with at most a CORR annotation) is refused
  unparsed: no oneway, batch, compressed, PING or other message is ever parsed or run;
- a connection must bring a complete message within IDLE_TIMEOUT of opening or of its last reply, or
  it is dropped (idle, slow and half-open connections cost a socket and a few bytes meanwhile);
- complete messages go to a fixed pool of WORKERS threads, taken round-robin by source address with at
  most IN_FLIGHT_PER_SOURCE at once for any source (fairjobs), so one address cannot take every
  worker; the control machines' messages go to CONTROL_WORKERS of their own, which no other host can
  take. A message is parsed holding one of PARSES_AT_ONCE slots (the control machines have their own),
  which bounds the memory parsing takes. A call runs as long as it needs: a connection whose request
  is being served has no deadline. The worker then waits LINGER for the connection's next message and
  serves it too while no other job waits for a worker, else re-arms the connection for the selector
  thread;
- each request is served knowing the source address the connection was accepted from (callers): no
  path asks the socket again, which fails once the caller has reset the connection;
- connections are limited per source address and, for machines that are not control machines, in
  total; with the total taken, a newcomer takes the place of an idle connection of the address that
  holds the most (so that a few hosts cannot lock out the dashboard);
- an address that the RefusalLog finds flooding is not served until its interval ends.
Every refusal goes to the RefusalLog, which rate-limits the lines.
"""
import collections
import ipaddress
import select
import socket
import sys
import threading
import time
import uuid

import Pyro4
import Pyro4.core
import Pyro4.errors
import Pyro4.util
from Pyro4 import message

from ..shared.addresses import canonical
from . import callers
from .fairjobs import FairJobs, FairSlots
from .frames import CLOSED, COMPLETE, PARTIAL, Client, WireRefusal, read_message, readable, refusal_reply

# The largest valid request, shutdown() of 32 domains of 64 characters, is about 2.5 KB: three times
# that, so that a malformed call of a plausible size (a hundred names) still gets its 3. Parsing a
# serpent message costs up to about 530 times its size (measured: 8 KiB of '{},' peaks at 4.3 MB),
# so at most PARSES_AT_ONCE are parsed at once (docs/network.md has the arithmetic).
MAX_MESSAGE_SIZE = 8 * 1024
PARSES_AT_ONCE = 1
CONTROL_PARSES_AT_ONCE = 2  # the control machines' own, which no other host can take
MAX_CONNECTIONS = 1024  # from machines that are not control machines: twice what 16 hosts x 32 hold
MAX_CONNECTIONS_PER_SOURCE = 32
# A connection must bring a complete request within this long of opening or of its last reply.
IDLE_TIMEOUT = 10.0
# How long a reply may take to leave (a caller that does not read it holds a worker this long).
SEND_TIMEOUT = 10.0
# Enough for the dashboard host's parallel queries of a hung camera (each 1 s) beside those of the
# others; one address may hold half of them.
WORKERS = 48
IN_FLIGHT_PER_SOURCE = 24
# Workers only the control machines' requests run on: opsd's initialize() and shutdown() and camvirt
# on a control machine get a worker whatever the rest of the network does.
CONTROL_WORKERS = 8
# A client's socket is watched for one readable event at a time: the selector thread re-arms it while
# a message is incomplete, the worker that served a message once it has replied. Re-arming is an
# epoll_ctl call, safe from any thread, so a reply needs no round through the selector thread.
ARMED = select.EPOLLIN | select.EPOLLONESHOT
# The selector thread wakes at least this often to drop expired connections and flush refusals.
TICK = 0.25
ACCEPTS_PER_TICK = 64
# After serving a message, a worker waits this long for the connection's next one before handing it
# back to the selector thread: a proxy's call follows its handshake within a fraction of that.
LINGER = 0.005
# After accept() failed (out of file descriptors), the listener rests this long instead of spinning.
ACCEPT_PAUSE = 0.5
# Connections the kernel completes before the selector thread accepts them. As many as the connections
# other hosts may hold: under a flood of them a control machine's connect waits its turn in the queue
# (the flood is accepted and shed at tens of microseconds each) instead of having its SYN dropped and
# retransmitted a second later (the kernel caps it at net.core.somaxconn, 4096 on the hosts).
LISTEN_BACKLOG = MAX_CONNECTIONS


def configure_pyro():
    """The process-wide Pyro4 settings this server relies on (camvirtd serves one daemon)."""
    Pyro4.config.SERIALIZERS_ACCEPTED = {'serpent'}  # the rockit family's; nothing else is parsed
    Pyro4.config.ONEWAY_THREADED = False  # oneway calls are refused at the wire; never a thread of their own
    Pyro4.config.DETAILED_TRACEBACK = False
    # A thread waiting for the GIL gets it within 1 ms instead of 5 ms: a control machine's call needs
    # it a few dozen times, while a flood keeps a parse and the selector thread busy.
    sys.setswitchinterval(0.001)


def listen(host, port, backlog=LISTEN_BACKLOG):
    """A listening TCP socket; '::' listens on IPv6 and IPv4 both (dual stack)."""
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    dual = family == socket.AF_INET6 and ipaddress.ip_address(host.split('%')[0]).is_unspecified
    sock = socket.create_server((host, port), family=family, backlog=backlog, dualstack_ipv6=dual)
    sock.setblocking(False)
    return sock


class HardenedServer:
    """The transport server of a HardenedDaemon (Pyro4's transportServer interface: loop, shutdown,
    close, sock, sockets, locationStr). Its loop runs in the thread that calls Daemon.requestLoop;
    it owns the worker threads and stops them in close()."""

    def __init__(self, daemon, listener, refusals, privileged, limits):
        self.daemon = daemon
        self.sock = listener
        self.limits = limits
        self._refusals = refusals
        self._privileged = privileged
        host, port = listener.getsockname()[:2]
        self.locationStr = '[{}]:{}'.format(host, port) if ':' in host else '{}:{}'.format(host, port)
        self._epoll = select.epoll()
        self._epoll.register(listener.fileno(), select.EPOLLIN)
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._epoll.register(self._wake_read.fileno(), select.EPOLLIN)
        self._clients = set()
        # Held while a client leaves _clients and its socket closes, and while a worker re-arms one: a
        # worker never re-arms a descriptor that was closed and reused by a newer connection meanwhile.
        self._membership = threading.Lock()
        self._by_fd = {}
        self._per_source = collections.Counter()
        self._returned = collections.deque()  # clients the workers are done with, to drop
        self._jobs = FairJobs(limits['in_flight_per_source'])
        self._control_jobs = FairJobs(limits['control_workers'])
        self._parses = FairSlots(limits['parses_at_once'])
        self._control_parses = FairSlots(limits['control_parses_at_once'])
        self._others = 0  # connections from machines that are not control machines
        self._stopping = threading.Event()
        self._loop_done = threading.Event()
        self._loop_done.set()
        self._next_sweep = 0.0
        self._accept_paused_until = None
        self._workers = [threading.Thread(target=self._work, args=(self._jobs,), name='pyro-worker-{}'.format(i),
                                          daemon=True) for i in range(limits['workers'])]
        self._workers += [threading.Thread(target=self._work, args=(self._control_jobs,), daemon=True,
                                           name='pyro-control-worker-{}'.format(i))
                          for i in range(limits['control_workers'])]
        for worker in self._workers:
            worker.start()

    @property
    def sockets(self):
        return [self.sock]

    def __repr__(self):
        return '<HardenedServer on {}; {} connections>'.format(self.locationStr, len(self._clients))

    # --- the selector thread ----------------------------------------------------------------------

    def loop(self, loopCondition=lambda: True):  # noqa: N803 (Pyro4's name)
        self._loop_done.clear()
        try:
            while not self._stopping.is_set() and loopCondition():
                self._step()
        finally:
            self._loop_done.set()

    def _step(self):
        # Each event goes to the client polled: accepting a newcomer may drop an idle client whose event
        # comes later in the same poll, and accept a newer connection under its descriptor number, which
        # must not be read for it (the newer one would then be served while still armed).
        events = [(fd, self._by_fd.get(fd)) for fd, _ in self._epoll.poll(TICK)]
        for fd, client in events:
            if fd == self.sock.fileno():
                self._accept()
            elif fd == self._wake_read.fileno():
                self._drain_wake()
            elif client is not None and self._by_fd.get(fd) is client:
                self._read(client)
        self._take_returns()
        now = time.monotonic()
        if self._accept_paused_until is not None and now >= self._accept_paused_until:
            self._accept_paused_until = None
            self._epoll.register(self.sock.fileno(), select.EPOLLIN)
        if now >= self._next_sweep:
            self._next_sweep = now + TICK
            self._drop_expired(now)
            self._refusals.flush_due()

    def _accept(self):
        for _ in range(ACCEPTS_PER_TICK):
            try:
                sock, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and the like: the backlog keeps them until a socket frees
                self._refusals.refused('(unknown)', 'connection', 'cannot accept', e.strerror or str(e))
                self._epoll.unregister(self.sock.fileno())
                self._accept_paused_until = time.monotonic() + ACCEPT_PAUSE
                return
            source = canonical(peer[0])
            problem = self._admission_problem(source) or self._flood_problem(source)
            if problem:
                sock.close()
                self._refusals.refused(source, 'connection', problem)
                continue
            sock.setblocking(False)  # reads wait on the selector, replies on BufferedConnection.send
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = Client(sock, source, time.monotonic() + self.limits['idle_timeout'],
                            self.limits['send_timeout'])
            client.privileged = self._privileged(source)
            self._clients.add(client)
            self._per_source[source] += 1
            self._others += not client.privileged
            self._by_fd[client.fd] = client
            self._epoll.register(client.fd, ARMED)

    def _admission_problem(self, source):
        if self._per_source[source] >= self.limits['max_connections_per_source']:
            return 'too many connections from this address'
        if self._others >= self.limits['max_connections'] and not self._privileged(source) and \
                not self._make_room(source):
            return 'too many connections'
        return None

    def _make_room(self, source):
        """With every connection taken, a newcomer takes the place of an idle connection of the address
        that holds the most, when that address holds more than the newcomer would: so a few hosts
        holding every connection cannot lock out one more (the dashboard). Whether room was made."""
        holders = collections.Counter(c.source for c in self._clients if not c.privileged)
        largest, held = holders.most_common(1)[0] if holders else (None, 0)
        if held <= self._per_source[source] + 1:
            return False
        idle = [c for c in self._clients if c.source == largest and not c.busy]
        if not idle:
            return False
        self._refuse(min(idle, key=lambda c: c.deadline),
                     WireRefusal('connection taken over', 'every connection was taken; one of this address\'s went'))
        return True

    def _flood_problem(self, source):
        """A source that keeps being refused is not served for the rest of the refusals' interval
        (control machines always are)."""
        if self._refusals.flooding(source) and not self._privileged(source):
            return 'refusal flood'
        return None

    def _read(self, client):
        outcome = read_message(client, self.limits['max_message_size'])
        if outcome is PARTIAL:
            self._epoll.modify(client.fd, ARMED)  # the rest of the message, when it comes
        elif outcome is CLOSED:
            self._drop(client)  # the caller closed or reset it
        elif isinstance(outcome, WireRefusal):
            self._refuse(client, outcome)
        elif self._flood_problem(client.source):
            self._refuse(client, WireRefusal('refusal flood', 'not served until the interval ends'))
        else:
            client.busy = True
            jobs = self._control_jobs if client.privileged else self._jobs
            jobs.put(client.source, (client, client.take_message()))

    def _take_returns(self):
        while self._returned:
            client, outcome = self._returned.popleft()
            client.busy = False
            if isinstance(outcome, WireRefusal):
                self._refuse(client, outcome)
            else:
                self._drop(client)

    def _drop_expired(self, now):
        for client in [c for c in self._clients if not c.busy and c.deadline <= now]:
            why = 'incomplete message' if client.buffer else 'idle'
            self._refuse(client, WireRefusal(why, 'no complete request within {:g} s'.format(
                self.limits['idle_timeout'])))

    def _refuse(self, client, refusal):
        self._refusals.refused(client.source, 'connection', refusal.why, refusal.detail)
        if refusal.header is not None:
            self._send_refusal(client, refusal.header, '{}: {}'.format(refusal.why, refusal.detail))
        self._drop(client)

    @staticmethod
    def _send_refusal(client, header, text):
        """A best-effort error reply to a refused message (a plain Pyro4 client then raises an error
        that says why): sent without waiting, so it is lost when the caller's buffers are full."""
        reply = refusal_reply(header, text)
        if reply is None:
            return
        try:
            client.sock.send(reply)
        except OSError:
            pass  # the caller is gone or its buffers are full: it learns from the closed connection

    def _drop(self, client):
        with self._membership:
            if client not in self._clients:
                return
            self._clients.discard(client)
            self._per_source[client.source] -= 1
            self._others -= not client.privileged
            if not self._per_source[client.source]:
                del self._per_source[client.source]
            self._by_fd.pop(client.fd, None)
            try:
                self._epoll.unregister(client.fd)
            except (OSError, ValueError):
                pass  # closed already
            client.conn.close()

    def _drain_wake(self):
        try:
            while self._wake_read.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _wake(self):
        try:
            self._wake_write.send(b'\0')
        except (BlockingIOError, InterruptedError):
            pass  # a wake-up is pending already
        except OSError:
            pass  # closed: the server is stopping

    # --- the workers ------------------------------------------------------------------------------

    def _work(self, jobs):
        while True:
            taken = jobs.take()
            if taken is None:
                return
            source, (client, data) = taken
            try:
                outcome = self._serve_on(client, data, jobs)
            finally:
                jobs.done(source)
            if outcome is PARTIAL and not self._stopping.is_set() and self._rearm(client):
                continue
            self._returned.append((client, outcome))  # to be dropped by the selector thread
            self._wake()

    def _serve_on(self, client, data, jobs):
        """Serves the client's message, and the next ones that come within LINGER of each reply (a
        Pyro4 proxy's call right after its handshake, a kept proxy's next call) without a round through
        the selector thread, while no other job waits for a worker (a caller that never pauses would
        keep its worker from the queue). PARTIAL when the selector should watch the client again, else
        CLOSED or a WireRefusal for the selector thread to drop it with."""
        while self._serve(client, data) and not self._stopping.is_set():
            # Asked again after the wait: a job queued meanwhile must not wait for this one's next call.
            if jobs.waiting() or not readable(client.sock, LINGER) or jobs.waiting():
                return PARTIAL
            outcome = read_message(client, self.limits['max_message_size'])
            if outcome is not COMPLETE:
                return outcome
            if self._flood_problem(client.source):
                return WireRefusal('refusal flood', 'not served until the interval ends')
            data = client.take_message()
        return CLOSED

    def _rearm(self, client):
        """Watches a served client for its next message (from a worker); False when it cannot be (it
        was dropped meanwhile: taken over, or the server is stopping)."""
        with self._membership:
            if client not in self._clients:
                return False
            client.deadline = time.monotonic() + self.limits['idle_timeout']
            client.busy = False
            try:
                self._epoll.modify(client.fd, ARMED)
                return True
            except (OSError, ValueError):
                client.busy = True  # the epoll is closed (the server is stopping): the loop drops it
                return False

    def _serve(self, client, data):
        """Handles one complete message with Pyro's Daemon; whether to keep the connection."""
        client.conn.feed(data)
        try:
            with callers.serving(client.source):
                return self._handle(client)
        except (OSError, Pyro4.errors.ConnectionClosedError, Pyro4.errors.TimeoutError):
            return False
        except Exception as e:
            # Pyro answered the caller already where it could (a bad message, a refused serializer).
            self._refusals.refused(client.source, 'request', 'bad request', '{}: {}'.format(type(e).__name__, e))
            return False

    def _handle(self, client):
        """A message read_message() let through: parsed holding a parse slot (the control machines have
        their own), so that the worst the limits allow is PARSES_AT_ONCE parses at once."""
        slots = self._control_parses if client.privileged else self._parses
        slot = slots.held(client.source)
        if not client.handshaken:
            with slot:  # Pyro's handshake parses the CONNECT and calls no method of ours
                client.handshaken = self.daemon._handshake(client.conn)
            return client.handshaken
        self.daemon.serve_call(client.conn, slot)
        return True

    # --- stopping ---------------------------------------------------------------------------------

    def shutdown(self):
        self._stopping.set()
        self._wake()

    def close(self):
        """Stops the loop, the workers (a worker still in a call is left to end: calls cannot be
        interrupted) and closes every socket."""
        self.shutdown()
        self._loop_done.wait(timeout=5)
        self._jobs.close()
        self._control_jobs.close()
        deadline = time.monotonic() + 2
        for worker in self._workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
        for client in list(self._clients):
            self._drop(client)
        self._epoll.close()
        self.sock.close()
        self._wake_read.close()
        self._wake_write.close()


DEFAULT_LIMITS = {
    'max_message_size': MAX_MESSAGE_SIZE,
    'max_connections': MAX_CONNECTIONS,
    'max_connections_per_source': MAX_CONNECTIONS_PER_SOURCE,
    'idle_timeout': IDLE_TIMEOUT,
    'send_timeout': SEND_TIMEOUT,
    'workers': WORKERS,
    'in_flight_per_source': IN_FLIGHT_PER_SOURCE,
    'control_workers': CONTROL_WORKERS,
    'parses_at_once': PARSES_AT_ONCE,
    'control_parses_at_once': CONTROL_PARSES_AT_ONCE,
}


class HardenedDaemon(Pyro4.core.Daemon):
    """A Pyro4 Daemon served by a HardenedServer, whose error replies carry no traceback (no local
    file paths: the exception's own message says what was wrong).

    refusals: a RefusalLog; privileged(source) -> whether an address may connect beyond the total
    limit (the control machines); limits: overrides of DEFAULT_LIMITS."""

    def __init__(self, host, port, refusals, privileged=None, limits=None):
        listener = listen(host, port)
        # Pyro4's Daemon makes its transport server in __init__ from config.SERVERTYPE ('thread' or
        # 'multiplex', both unfit here). Given a connected socket it makes a passive single-connection
        # one instead, which is replaced at once: a socketpair nobody else sees.
        placeholder, other = socket.socketpair()
        try:
            super().__init__(connected_socket=placeholder)
        finally:
            other.close()
        self.transportServer.conn = None
        placeholder.close()
        merged = dict(DEFAULT_LIMITS, **(limits or {}))
        self.transportServer = HardenedServer(self, listener, refusals, privileged or (lambda _: False), merged)
        self.locationStr = self.transportServer.locationStr

    def serve_call(self, conn, parse_slot):
        """Pyro4's handleRequest for the one message the server lets through after the handshake (an
        INVOKE in serpent with no flags and at most a CORR annotation: no oneway, batch, compression or
        stream to handle): parses it holding `parse_slot`, calls the exposed method and replies as
        Pyro4's Daemon does. The caller is the source the server accepted (callers.current())."""
        msg = message.Message.recv(conn, [message.MSG_INVOKE])
        seq, serializer_id = msg.seq, msg.serializer_id
        corr = msg.annotations.get('CORR')
        Pyro4.current_context.correlation_id = uuid.UUID(bytes=bytes(corr)) if corr else uuid.uuid4()
        serializer = Pyro4.util.get_serializer_by_id(serializer_id)
        try:
            with parse_slot:
                object_id, method_name, vargs, kwargs = serializer.deserializeCall(msg.data, compressed=False)
            del msg
            obj = self.objectsById.get(object_id)
            if obj is None:
                raise Pyro4.errors.DaemonError('unknown object')
            Pyro4.current_context.client = conn
            Pyro4.current_context.seq = seq
            result = Pyro4.util.getAttribute(obj, method_name)(*vargs, **kwargs)
            data, _ = serializer.serializeData(result, compress=False)
        except Exception as e:  # the caller is told, as Pyro4 does
            self._sendExceptionResponse(conn, seq, serializer_id, e, None)
            return
        reply = message.Message(message.MSG_RESULT, data, serializer_id, 0, seq,
                                annotations={'CORR': Pyro4.current_context.correlation_id.bytes})
        conn.send(reply.to_bytes())

    def _sendExceptionResponse(self, connection, seq, serializer_id, exc_value, tbinfo, flags=0,  # noqa: N802
                               annotations=None):
        super()._sendExceptionResponse(connection, seq, serializer_id, exc_value, [], flags, annotations)
