"""wire.HardenedDaemon in this process with small limits, called by plain Pyro4 proxies and raw
sockets on loopback (the full-size attacks on camvirtd as a process are in e2e/test_e2e_hostile.py)."""

import threading
import time

import Pyro4
import Pyro4.errors
import pytest
from testworld.support import ListLog, free_port, wait_until

from rockit.camvirt.wire import server as wire
from rockit.camvirt.wire.refusals import FLOOD_REFUSALS, RefusalLog
from testworld import attacks


@Pyro4.expose
class Echo:
    def __init__(self):
        self.calls = 0
        self.release = threading.Event()

    def echo(self, value):
        self.calls += 1
        return value

    def wait(self, seconds):
        return self.release.wait(seconds)

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


def test_connections_are_limited_per_source_and_in_all_but_not_for_privileged_sources(served):
    uri, port, _, log = served(max_connections_per_source=3, max_connections=4)
    held = attacks.hold('127.0.0.1', port, 1, source='127.0.0.2')
    held += attacks.hold('127.0.0.1', port, 5, source='127.0.0.3')
    try:
        assert wait_until(lambda: sum(attacks.closed_by_server(s) for s in held) == 2, 5)
        held += attacks.hold('127.0.0.1', port, 1, source='127.0.0.4')  # the total (4) is full
        assert wait_until(lambda: attacks.closed_by_server(held[-1]), 5)
        assert call(uri, 'echo', 'privileged') == 'privileged'  # 127.0.0.1 is exempt from the total
    finally:
        for sock in held:
            sock.close()
    assert 'too many connections from this address' in log.text() and 'too many connections' in log.text()


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
    uri, port, echo, _ = served(workers=3, in_flight_per_source=2)
    sock = attacks.handshake('127.0.0.1', port, 'echo', source='127.0.0.2')
    others = [attacks.handshake('127.0.0.1', port, 'echo', source='127.0.0.2') for _ in range(3)]
    try:
        for s in [sock] + others:
            s.sendall(attacks.invoke_message('echo', 'wait', [10], oneway=True))
        time.sleep(0.2)
        start = time.monotonic()
        assert call(uri, 'echo', 'through') == 'through'  # from 127.0.0.1: the third worker is free
        assert time.monotonic() - start < 2
    finally:
        echo.release.set()
        for s in [sock] + others:
            s.close()


def test_oneway_calls_run_on_the_workers_not_threads_of_their_own(served):
    uri, port, echo, _ = served(workers=2)
    before = threading.active_count()
    sent = attacks.oneway_flood('127.0.0.1', port, 'echo', 'echo', [1], 500, source='127.0.0.2')
    assert sent == 500
    assert wait_until(lambda: echo.calls == 500, 10)
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
