"""wire.HardenedDaemon in this process with small limits, called by plain Pyro4 proxies and raw
sockets on loopback (the full-size attacks on camvirtd as a process are in e2e/test_e2e_hostile.py)."""

import socket
import threading
import time
import uuid

import Pyro4
import Pyro4.errors
import Pyro4.util
import pytest
from Pyro4 import message

from rockit.camvirt.wire import server as wire
from rockit.camvirt.wire.frames import readable
from rockit.camvirt.wire.refusals import FLOOD_REFUSALS, RefusalLog
from testworld import attacks
from testworld.support import ListLog, free_port, wait_until


@Pyro4.expose
class Echo:
    def __init__(self):
        self.calls = 0
        self.waiting = 0
        self.release = threading.Event()

    def echo(self, value):
        self.calls += 1
        return value

    def wait(self, seconds):
        self.waiting += 1
        try:
            return self.release.wait(seconds)
        finally:
            self.waiting -= 1

    def fail(self):
        raise ValueError('no such thing')


@pytest.fixture
def served():
    wire.configure_pyro()
    log = ListLog()
    started = []

    def serve(**limits):
        port = free_port()
        serve.refusals = RefusalLog(log)
        daemon = wire.HardenedDaemon('127.0.0.1', port, serve.refusals, privileged=lambda s: s == '127.0.0.1',
                                     limits=limits)
        echo = Echo()
        uri = daemon.register(echo, objectId='echo')
        thread = threading.Thread(target=daemon.requestLoop, daemon=True)
        thread.start()
        started.append((daemon, thread))
        return uri, port, echo, log

    yield serve
    for daemon, thread in started:
        daemon.shutdown()
        thread.join(timeout=5)
        assert not thread.is_alive()


def call(uri, method, *args, timeout=5):
    with Pyro4.Proxy(uri) as proxy:
        proxy._pyroTimeout = timeout
        return getattr(proxy, method)(*args)


def call_from(source, port, method, *args):
    """method(*args) on 'echo' as a plain proxy sends it, from `source` (an address on loopback)."""
    sock = attacks.handshake('127.0.0.1', port, 'echo', source)
    try:
        sock.settimeout(5)
        sock.sendall(attacks.invoke_message('echo', method, args))
        _, data = attacks.receive_message(sock)
        return attacks.SERPENT.deserializeData(data)
    finally:
        sock.close()


def test_plain_pyro_proxies_call_as_ever(served):
    uri, _, echo, _ = served()
    assert call(uri, 'echo', {'a': [1, 2]}) == {'a': [1, 2]}
    with Pyro4.Proxy(uri) as proxy:  # one proxy, several calls on one connection
        assert [proxy.echo(i) for i in range(5)] == list(range(5))
    assert echo.calls == 6


def test_errors_say_what_was_wrong_without_a_traceback(served):
    uri, _, _, _ = served()
    with pytest.raises(ValueError, match='no such thing') as raised:
        call(uri, 'fail')
    assert not getattr(raised.value, '_pyroTraceback', None)
    with pytest.raises(Pyro4.errors.PyroError, match='unknown object'):
        call(str(uri).replace('echo', 'nosuch'), 'echo', 1)


def test_a_message_over_the_limit_is_refused_and_the_server_goes_on(served):
    uri, port, _, log = served(max_message_size=1024)
    with pytest.raises(Pyro4.errors.CommunicationError):
        call(uri, 'echo', 'x' * 2000)
    sent, _ = attacks.send_large('127.0.0.1', port, 8 * 2 ** 20, declared=0x7fffffff)
    assert sent < 8 * 2 ** 20
    assert call(uri, 'echo', 'x' * 500) == 'x' * 500
    assert 'message too large' in log.text()


def test_a_call_with_more_values_than_a_real_one_is_refused_unparsed_and_one_of_a_plausible_size_is_not(served):
    uri, _, echo, log = served()
    assert call(uri, 'echo', ['d{:063d}'.format(i) for i in range(100)])  # a hundred names: parsed
    with pytest.raises(Pyro4.errors.CommunicationError, match='too many values'):
        call(uri, 'echo', [{}] * 300)
    assert echo.calls == 1 and 'too many values' in log.text()


def test_connections_are_limited_per_source_and_in_all_but_not_for_privileged_sources(served):
    uri, port, _, log = served(max_connections_per_source=3, max_connections=4)
    held = attacks.hold('127.0.0.1', port, 1, source='127.0.0.2')
    held += attacks.hold('127.0.0.1', port, 5, source='127.0.0.3')
    try:
        assert wait_until(lambda: sum(attacks.closed_by_server(s) for s in held) == 2, 5)
        assert call(uri, 'echo', 'privileged') == 'privileged'  # 127.0.0.1 is not counted in the total
    finally:
        for sock in held:
            sock.close()
    assert 'too many connections from this address' in log.text()


def test_with_every_connection_taken_a_newcomer_takes_an_idle_one_of_the_largest_holder(served):
    uri, port, _, log = served(max_connections_per_source=3, max_connections=4)
    first = attacks.hold('127.0.0.1', port, 1, source='127.0.0.2')
    largest = attacks.hold('127.0.0.1', port, 3, source='127.0.0.3')
    held = first + largest
    try:
        newcomer = attacks.hold('127.0.0.1', port, 1, source='127.0.0.4')  # the total (4) is full
        held += newcomer
        assert wait_until(lambda: sum(attacks.closed_by_server(s) for s in largest) == 1, 5)
        assert not attacks.closed_by_server(newcomer[0]) and not attacks.closed_by_server(first[0])
        # 127.0.0.3 now holds 2, the newcomer 1: a second from it would hold as many, so it is refused.
        held += attacks.hold('127.0.0.1', port, 1, source='127.0.0.4')
        assert wait_until(lambda: attacks.closed_by_server(held[-1]), 5)
    finally:
        for sock in held:
            sock.close()
    assert 'connection taken over' in log.text() and 'too many connections' in log.text()


def test_idle_and_slow_connections_are_dropped_but_a_long_call_is_not(served):
    uri, port, echo, log = served(idle_timeout=0.5)
    result = []
    caller = threading.Thread(target=lambda: result.append(call(uri, 'wait', 10, timeout=20)))
    caller.start()
    idle = attacks.hold('127.0.0.1', port, 2) + attacks.hold('127.0.0.1', port, 2, partial=b'PYRO\x00')
    assert wait_until(lambda: all(attacks.closed_by_server(s) for s in idle), 5)
    time.sleep(1.0)  # the call runs on, well past the idle limit
    echo.release.set()
    caller.join(timeout=10)
    assert result == [True]
    assert 'refused connection from 127.0.0.2: idle' in log.text()
    assert 'refused connection from 127.0.0.2: incomplete message' in log.text()


def test_one_source_cannot_take_every_worker(served):
    uri, port, echo, _ = served(workers=3, in_flight_per_source=2, control_workers=1)
    held = [attacks.handshake('127.0.0.1', port, 'echo', source='127.0.0.2') for _ in range(4)]
    try:
        for s in held:
            s.sendall(attacks.invoke_message('echo', 'wait', [10]))
        assert wait_until(lambda: echo.waiting == 2, 5)
        start = time.monotonic()
        assert call_from('127.0.0.3', port, 'echo', 'through') == 'through'  # the third worker is free
        assert time.monotonic() - start < 2
    finally:
        echo.release.set()
        for s in held:
            s.close()


def test_the_control_machines_have_workers_no_other_host_can_take(served):
    uri, port, echo, _ = served(workers=2, in_flight_per_source=1, control_workers=1)
    held = [attacks.handshake('127.0.0.1', port, 'echo', source='127.0.0.{}'.format(i)) for i in (2, 3, 4)]
    try:
        for s in held:
            s.sendall(attacks.invoke_message('echo', 'wait', [10]))
        assert wait_until(lambda: echo.waiting == 2, 5)  # every other worker is taken
        start = time.monotonic()
        assert call(uri, 'echo', 'control') == 'control'  # from 127.0.0.1, a control machine
        assert time.monotonic() - start < 2
    finally:
        echo.release.set()
        for s in held:
            s.close()


def send_and_read(port, data, source='127.0.0.2', handshaken=True):
    """Sends `data` (after a handshake) and returns the reply (header, data), or None when the server
    closed the connection without one."""
    sock = attacks.handshake('127.0.0.1', port, 'echo', source) if handshaken else \
        attacks.connect('127.0.0.1', port, source)
    try:
        sock.sendall(data)
        sock.settimeout(5)
        try:
            return attacks.receive_message(sock)
        except ConnectionError:
            return None
    finally:
        sock.close()


def invoke(flags=0, serializer=attacks.SERPENT, annotations=None, msg_type=message.MSG_INVOKE, args=(1,)):
    data, _ = serializer.serializeCall('echo', 'echo', args, {})
    return message.Message(msg_type, data, serializer.serializer_id, flags, 1, annotations=annotations).to_bytes()


@pytest.mark.parametrize('data, why', [
    (invoke(flags=message.FLAGS_ONEWAY), 'INVOKE oneway flags'),
    (invoke(flags=message.FLAGS_BATCH), 'INVOKE batch flags'),
    (invoke(flags=message.FLAGS_COMPRESSED), 'INVOKE compressed flags'),
    (invoke(flags=message.FLAGS_KEEPSERIALIZED), 'INVOKE keep serialized flags'),
    (invoke(flags=0x8000), 'INVOKE 0x8000 flags'),
    (invoke(msg_type=message.MSG_PING), 'PING where camvirtd takes INVOKE'),
    (invoke(msg_type=message.MSG_CONNECT), 'CONNECT where camvirtd takes INVOKE'),
    (invoke(msg_type=message.MSG_RESULT), 'RESULT where camvirtd takes INVOKE'),
    (invoke(annotations={'BLBI': b'x' * 16}), 'camvirtd takes a CORR id alone'),
    (invoke(annotations={'CORR': b'x' * 17}), 'camvirtd takes a CORR id alone'),
    (invoke(annotations={'CORR': b'x' * 16, 'HMAC': b'y' * 16}), 'camvirtd takes a CORR id alone'),
    (invoke(serializer=Pyro4.util.get_serializer('json')), 'serpent only, not json'),
])
def test_only_what_rockits_callers_send_is_taken_and_the_rest_is_refused_saying_why(served, data, why):
    uri, port, echo, log = served()
    reply = send_and_read(port, data)
    assert reply is not None
    assert reply[0].flags & message.FLAGS_EXCEPTION or reply[0].type == message.MSG_CONNECTFAIL
    assert why in str(Pyro4.util.get_serializer_by_id(reply[0].serializer_id).deserializeData(reply[1]))
    assert echo.calls == 0
    assert 'refused connection from 127.0.0.2: ' in log.text()
    assert call(uri, 'echo', 'after') == 'after'


@pytest.mark.parametrize('data, why', [
    (attacks.connect_message('echo')[:14] + b'\0\0' + attacks.connect_message('echo')[16:], 'checksum'),
    (message.Message(message.MSG_CONNECT, b"{'handshake':'hello','object':'echo'}", attacks.SERPENT.serializer_id,
                     0, 0).to_bytes(), 'CONNECT no flags: camvirtd takes meta on connect flags'),
    (message.Message(message.MSG_CONNECT, b'x\x9c' + b'\0' * 20, attacks.SERPENT.serializer_id,
                     message.FLAGS_META_ON_CONNECT | message.FLAGS_COMPRESSED, 0).to_bytes(), 'compressed'),
])
def test_a_connect_that_a_plain_proxy_would_not_send_is_refused(served, data, why):
    _, port, _, log = served()
    reply = send_and_read(port, data, handshaken=False)
    assert reply is None or reply[0].type == message.MSG_CONNECTFAIL
    assert why in log.text()


def test_a_proxy_inside_a_pyro_handler_passes_its_correlation_id_and_is_served(served):
    uri, port, echo, _ = served()
    Pyro4.current_context.correlation_id = uuid.uuid4()
    try:
        assert call(uri, 'echo', 'correlated') == 'correlated'
    finally:
        Pyro4.current_context.correlation_id = None
    reply = send_and_read(port, invoke(annotations={'CORR': b'c' * 16}))
    assert not reply[0].flags & message.FLAGS_EXCEPTION and echo.calls == 2


def test_oneway_calls_are_refused_never_run(served):
    _, port, echo, log = served(workers=2)
    before = threading.active_count()
    attacks.oneway_flood('127.0.0.1', port, 'echo', 'echo', [1], 500, source='127.0.0.2')
    assert wait_until(lambda: 'oneway flags' in log.text(), 5)
    assert echo.calls == 0
    assert threading.active_count() <= before + 1


def test_other_serializers_are_refused_with_a_reason(served, monkeypatch):
    uri, _, echo, log = served()
    monkeypatch.setattr(Pyro4.config, 'SERIALIZER', 'marshal')
    with pytest.raises(Pyro4.errors.CommunicationError, match='serpent only, not marshal'):
        call(uri, 'echo', 1)
    assert echo.calls == 0 and 'refused connection from 127.0.0.1: serializer' in log.text()


def test_a_flooding_source_is_not_served_until_the_interval_ends_but_a_privileged_one_is(served):
    uri, port, echo, _ = served()
    for source in ('127.0.0.2', '127.0.0.1'):
        for _ in range(FLOOD_REFUSALS):
            served.refusals.refused(source, 'initialize', 'not a control machine')
    with pytest.raises(ConnectionError):
        attacks.handshake('127.0.0.1', port, 'echo', source='127.0.0.2')
    assert call(uri, 'echo', 'privileged') == 'privileged'


def test_a_kept_connection_calling_without_pause_does_not_keep_its_worker_from_the_queue(served):
    """A worker serves a kept connection's next call at once only while nobody waits for a worker:
    a caller that never pauses must not make the others wait for all of its calls."""
    uri, port, echo, _ = served(control_workers=1)
    calls, started = 2000, threading.Event()

    def hammer():
        with Pyro4.Proxy(uri) as proxy:
            proxy._pyroTimeout = 5
            for n in range(calls):
                proxy.echo(n)
                started.set()

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        assert started.wait(5)
        assert call(uri, 'echo', 'other') == 'other'
        served_before = echo.calls
    finally:
        thread.join(30)
    assert served_before < calls / 2, served_before


def test_a_job_queued_during_the_linger_does_not_wait_for_the_lingering_connections_next_call(served):
    """A job that comes while a worker lingers on a kept connection is not made to wait for that
    connection's next call (here 1.5 s), though it came first."""
    _, port, _, _ = served(workers=1, in_flight_per_source=1, control_workers=1)
    worst = 0.0
    for _ in range(5):
        kept = attacks.handshake('127.0.0.1', port, 'echo', source='127.0.0.2')
        other = attacks.handshake('127.0.0.1', port, 'echo', source='127.0.0.3')
        try:
            kept.settimeout(5)
            other.settimeout(5)
            kept.sendall(attacks.invoke_message('echo', 'echo', ['first']))
            attacks.receive_message(kept)  # the worker is lingering on `kept` now
            other.sendall(attacks.invoke_message('echo', 'echo', ['other']))  # queued: the only worker lingers
            time.sleep(0.002)  # the kept caller's next call, within LINGER
            kept.sendall(attacks.invoke_message('echo', 'wait', [1.5]))
            began = time.monotonic()
            attacks.receive_message(other)
            worst = max(worst, time.monotonic() - began)
            attacks.receive_message(kept)
        finally:
            kept.close()
            other.close()
    assert worst < 1.0, worst


def test_a_worker_does_not_rearm_a_connection_dropped_meanwhile_whose_descriptor_a_newer_one_reuses():
    """A worker re-arms the connection it served while the selector thread may drop it (taken over,
    expired): the closed descriptor's number is the next connection's, which must not be re-armed for
    the selector while a worker serves it. The selector's steps are called here one by one."""
    wire.configure_pyro()
    daemon = wire.HardenedDaemon('127.0.0.1', free_port(), RefusalLog(ListLog()))
    server = daemon.transportServer
    address = ('127.0.0.1', server.sock.getsockname()[1])
    callers = [socket.create_connection(address, timeout=5)]
    try:
        first = accepted(server)
        first.busy = True  # a worker serves it
        # The newer caller connects before the drop: its own socket (in this process) must not take
        # the number the drop frees.
        callers.append(socket.create_connection(address, timeout=5))
        server._drop(first)  # taken over meanwhile
        newer = accepted(server)
        newer.busy = True  # a worker serves the newer one too
        assert newer.fd == first.fd  # the lowest free descriptor: the one just closed
        assert server._rearm(first) is False
        assert newer.busy is True
    finally:
        for sock in callers:
            sock.close()
        daemon.close()


def accepted(server):
    """The server's Client for the next connection, accepted by one selector step of the test's own."""
    before = set(server._clients)
    wait_until(lambda: server._accept() or set(server._clients) - before)
    (client,) = set(server._clients) - before
    return client


def test_connections_wait_in_the_kernels_queue_while_the_selector_is_busy_instead_of_being_dropped():
    """Under a flood, the selector thread accepts later than connections arrive: the kernel keeps as
    many as other hosts may hold, so a control machine's connect completes at once rather than having
    its SYN dropped and sent again a second later. Nothing accepts here (the selector is not run)."""
    daemon = wire.HardenedDaemon('127.0.0.1', free_port(), RefusalLog(ListLog()))
    address = ('127.0.0.1', daemon.transportServer.sock.getsockname()[1])
    waiting = []
    try:
        for _ in range(300):  # more than the 128 Python's socket.create_server queues by default
            waiting.append(socket.create_connection(address, timeout=0.5))  # a dropped SYN waits 1 s
    finally:
        for sock in waiting:
            sock.close()
        daemon.close()


def test_an_event_of_a_connection_taken_over_in_the_same_poll_is_not_read_on_the_newer_one_in_its_place():
    """One poll gives the listener's event, then an idle connection's: accepting a newcomer takes that
    idle connection's place, and the next connection accepted gets its descriptor number. The idle
    one's event must not read the newer one: that would leave the newer one armed while a worker
    serves it, so that its next message would be read by the selector thread too. No worker runs here
    (the queued jobs show what was read); the selector's steps are called one by one."""
    wire.configure_pyro()
    limits = dict(max_connections=2, workers=0, control_workers=0)
    daemon = wire.HardenedDaemon('127.0.0.1', free_port(), RefusalLog(ListLog()),
                                 privileged=lambda s: s == '127.0.0.4', limits=limits)
    server = daemon.transportServer
    port = server.sock.getsockname()[1]
    callers = []
    try:
        callers.append(attacks.connect('127.0.0.1', port, '127.0.0.2'))
        taken_over = accepted(server)  # the idle connection of the largest holder that goes first
        callers.append(attacks.connect('127.0.0.1', port, '127.0.0.2'))
        accepted(server)  # every connection is taken now
        callers.append(attacks.connect('127.0.0.1', port, '127.0.0.3'))  # takes one of 127.0.0.2's
        newer = attacks.connect('127.0.0.1', port, '127.0.0.4')  # accepted in the freed descriptor
        callers.append(newer)
        newer.sendall(attacks.connect_message('echo'))
        callers[0].sendall(b'PYRO')  # the taken-over connection's event comes after the listener's
        assert readable(taken_over.sock, 5)
        server._step()
        (client,) = [c for c in server._clients if c.source == '127.0.0.4']
        assert client.fd == taken_over.fd and taken_over not in server._clients
        assert wait_until(lambda: server._step() or client.busy)  # its CONNECT, on its own event
        newer.sendall(attacks.invoke_message('echo', 'echo', [1]))  # while a worker would serve it
        assert readable(client.sock, 5)
        for _ in range(2):
            server._step()
        queued = server._control_jobs._queues.get('127.0.0.4', [])
        assert [data[:4] for _, data in queued] == [b'PYRO']  # its CONNECT alone, read once
        assert not client.buffer  # and nothing more read while it is served
    finally:
        for sock in callers:
            sock.close()
        daemon.close()
