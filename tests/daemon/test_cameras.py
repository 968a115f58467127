"""The camera side: report_status() calls to real Pyro4 camds, one in flight per camd, each caller's
wait bounded as a whole, one kept connection per camd."""

import socket
import threading
import time

import Pyro4
import pytest
from Pyro4 import message

from rockit.camvirt.daemon import cameras
from rockit.camvirt.daemon.cameras import CameraProbe, wait_until_answering
from rockit.camvirt.shared.registry import DaemonAddress
from testworld.simcamd import DrippingCamd, HungCamd, SimulatedCamd, SimulatedCamera
from testworld.support import free_port


def address():
    return DaemonAddress('camd', 'camd_{}'.format(free_port()), '127.0.0.1', free_port())


def poll(condition, seconds=5):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def in_parallel(count, function):
    results = [None] * count
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, function()), daemon=True)
               for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@pytest.fixture
def probe():
    made = []

    def make(timeout):
        made.append(CameraProbe(timeout))
        return made[-1]
    yield make
    for p in made:
        p.close()


def test_status_of_an_answering_camd_reuses_one_connection(probe):
    camd = SimulatedCamd(address(), 'cam1', initialized=True).start()
    p = probe(1)
    try:
        for _ in range(5):
            assert p.status(camd.address)['state'] == 2
        assert camd.camera.calls == 5 and p.calls(camd.address) == 5
        assert camd.most_connections() == 1
    finally:
        camd.stop()


def test_a_camd_not_initialised_answers_state_0(probe):
    camd = SimulatedCamd(address(), 'cam1').start()
    try:
        assert probe(1).status(camd.address) == {'state': 0}
    finally:
        camd.stop()


def test_no_camd_gives_no_status_and_says_why(probe):
    answer = probe(1).ask(address())
    assert answer.status is None and not answer.timed_out
    assert 'cannot be reached' in answer.problem


def test_a_hung_camd_is_waited_on_for_the_timeout_and_asked_on_one_connection(probe):
    hung = HungCamd(address()).start()
    p = probe(0.3)
    try:
        started = time.monotonic()
        answer = p.ask(hung.address)
        assert answer.status is None and answer.timed_out and 'within 0.3 s' in answer.problem
        assert time.monotonic() - started < 2.0  # its wait, not the call's
        for _ in range(3):
            assert p.ask(hung.address).timed_out  # each waits on the call in flight
        assert hung.connections() == 1 and p.calls(hung.address) == 1
    finally:
        hung.stop()


def test_a_restarted_camd_is_reached_again_on_a_new_connection(probe):
    camd = SimulatedCamd(address(), 'cam1', initialized=True).start()
    p = probe(1)
    try:
        assert p.status(camd.address) is not None
        camd.stop()
        camd.start()
        assert p.status(camd.address) is not None  # the kept connection died with the old camd
    finally:
        camd.stop()


def test_concurrent_queries_share_one_call_and_its_answer(probe):
    camd = SimulatedCamd(address(), 'cam1', initialize_seconds=2.0).start()
    p = probe(6)
    try:
        camd.initialize_in_background()
        assert poll(lambda: camd.camera.state == 1)
        answers = in_parallel(16, lambda: p.status(camd.address))
        assert all(a is not None and a['state'] == 2 for a in answers)
        assert camd.camera.calls == 1 and camd.most_connections() == 1
    finally:
        camd.stop()


def test_queries_against_a_camd_busy_initialising_never_take_a_second_worker(probe):
    camd = SimulatedCamd(address(), 'cam1', initialize_seconds=4.0).start()
    p = probe(0.2)
    try:
        camd.initialize_in_background()
        assert poll(lambda: camd.camera.state == 1)
        for _ in range(3):
            answers = in_parallel(8, lambda: p.ask(camd.address))
            assert all(a.timed_out for a in answers)
        assert camd.most_connections() == 1
        assert poll(lambda: p.status(camd.address) is not None)
        assert camd.most_connections() == 1
    finally:
        camd.stop()


def test_a_camd_dripping_a_reply_larger_than_the_cap_is_refused_at_its_header(probe):
    camd = DrippingCamd(address(), declared=100_000, interval=0.5).start()
    try:
        answer = probe(1).ask(camd.address)
        assert answer.status is None and 'sent a reply of 100000 bytes' in answer.problem
    finally:
        camd.stop()


def test_a_dripping_camd_ends_at_the_call_cap_and_its_callers_wait_no_longer_than_their_own(probe, monkeypatch):
    monkeypatch.setattr(cameras, 'CALL_CAP', 1.0)
    camd = DrippingCamd(address(), declared=10_000, interval=0.1).start()
    p = probe(0.3)
    try:
        started = time.monotonic()
        assert p.ask(camd.address).timed_out
        assert time.monotonic() - started < 2.0
        answer = p.ask(camd.address, wait=10)
        assert answer.status is None and 'did not answer in time' in answer.problem
        assert time.monotonic() - started < 5.0  # the cap, not 10 kB at 10 bytes a second
    finally:
        camd.stop()


class RawCamd:
    """Answers the handshake, then each call with `reply` (a Pyro4 message's bytes)."""

    def __init__(self, reply):
        self.address = address()
        self._reply = reply
        self._listener = socket.create_server((self.address.host, self.address.port))
        self._listener.settimeout(5)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            ser = Pyro4.util.get_serializer('serpent')
            conn.recv(4096)
            conn.sendall(message.Message(message.MSG_CONNECTOK, ser.dumps('hello'), ser.serializer_id, 0, 0).to_bytes())
            conn.recv(4096)
            conn.sendall(self._reply)
            try:
                conn.recv(4096)  # until the client hangs up
            except OSError:
                pass

    def close(self):
        self._listener.close()


def result(data, flags=0):
    ser = Pyro4.util.get_serializer('serpent')
    return message.Message(message.MSG_RESULT, data, ser.serializer_id, flags, 1).to_bytes()


@pytest.mark.parametrize('reply,why', [
    (result(Pyro4.util.get_serializer('serpent').dumps({'state': 'x' * 100_000})), 'sent a reply of'),
    (result(b'x' * 100, message.FLAGS_COMPRESSED), 'compressed'),
    (result(b'{"state": 2', 0), 'does not parse'),
    (result(Pyro4.util.get_serializer('serpent').dumps([1, 2])), 'not a status dict'),
])
def test_odd_replies_are_refused(probe, reply, why):
    camd = RawCamd(reply)
    try:
        answer = probe(2).ask(camd.address)
        assert answer.status is None and why in answer.problem
    finally:
        camd.close()


def test_the_kept_connection_is_closed_after_a_few_idle_seconds(probe, monkeypatch):
    monkeypatch.setattr(cameras, 'KEEP_IDLE', 0.2)
    camd = SimulatedCamd(address(), 'cam1', initialized=True).start()
    p = probe(1)
    try:
        assert p.status(camd.address) is not None
        assert poll(lambda: camd.connections() == 0)
        assert p.status(camd.address) is not None  # and made anew
    finally:
        camd.stop()


def test_forget_ends_a_call_in_flight(probe):
    hung = HungCamd(address()).start()
    p = probe(0.1)
    try:
        assert p.ask(hung.address).timed_out
        p.forget(hung.address)
        answer = p.ask(hung.address, wait=2)
        assert answer.status is None and not answer.timed_out  # the call ended at once
        assert p.ask(hung.address).timed_out  # the next is made anew
        assert hung.connections() == 2
    finally:
        hung.stop()


def test_close_ends_the_callers_threads():
    hung = HungCamd(address()).start()
    p = CameraProbe(0.1)
    try:
        p.ask(hung.address)
        p.close()
        assert poll(lambda: not [t for t in threading.enumerate() if t.name == 'camd-' + hung.address.object_id])
        assert 'stopping' in p.ask(hung.address).problem  # and none started after
    finally:
        hung.stop()


def test_wait_until_answering_stops_when_told_to_give_up(probe):
    calls = []
    give_up = lambda: calls.append(1) or len(calls) > 3  # noqa: E731
    answer = wait_until_answering(probe(0.2), address(), time.monotonic() + 30, give_up)
    assert len(calls) == 4
    assert not answer.answered and 'cannot be reached' in answer.problem  # what its last try found


def test_wait_until_answering_sees_a_late_camd(probe):
    camd = SimulatedCamd(address(), 'cam1')
    asked = []

    def give_up():
        asked.append(1)
        if len(asked) == 3:
            camd.start()
        return False

    try:
        assert wait_until_answering(probe(0.2), camd.address, time.monotonic() + 10, give_up).answered
        assert camd.camera.calls == 1
    finally:
        camd.stop()


def test_wait_until_answering_waits_on_the_call_in_flight(probe):
    camd = SimulatedCamd(address(), 'cam1', initialize_seconds=1.0).start()
    try:
        camd.initialize_in_background()
        assert poll(lambda: camd.camera.state == 1)
        assert wait_until_answering(probe(0.1), camd.address, time.monotonic() + 10, lambda: False).answered
        assert camd.most_connections() == 1 and camd.camera.calls == 1
    finally:
        camd.stop()


def test_a_camd_that_raises_gives_no_status(probe):
    class Raising(SimulatedCamera):
        @Pyro4.expose
        def report_status(self):
            raise RuntimeError('no camera')
    camd = SimulatedCamd(address(), 'cam1')
    camd.camera = Raising('cam1')
    camd.start()
    try:
        answer = probe(1).ask(camd.address)
        assert answer.status is None and 'raised RuntimeError' in answer.problem
    finally:
        camd.stop()


def test_a_camd_with_every_worker_taken_refuses_and_the_answer_says_so(probe):
    camd = SimulatedCamd(address(), 'cam1', initialized=True).start()
    held = []
    try:
        for _ in range(40):
            p = Pyro4.Proxy(camd.address.uri)
            p._pyroBind()
            held.append(p)
        answer = probe(1).ask(camd.address)
        assert answer.status is None and not answer.timed_out
        assert answer.problem.startswith("refused the connection: 'no free workers")
    finally:
        for p in held:
            p._pyroRelease()
        camd.stop()


def test_a_query_does_not_wait_again_on_a_call_camd_has_not_answered_within_camera_timeout(probe):
    camd = HungCamd(address()).start()
    p = probe(1.0)
    try:
        first = p.query(camd.address)
        assert first.timed_out and 'did not answer within 1 s' in first.problem
        later = in_parallel(8, lambda: (time.monotonic(), p.query(camd.address), time.monotonic()))
        # At once: the call in flight is older than camera_timeout already (each would wait 1 s).
        assert all(answer.timed_out and end - start < 0.5 for start, answer, end in later), later
        assert p.calls(camd.address) == 1
        # A command's wait for camd to come up waits its whole wait on the same call.
        started = time.monotonic()
        assert p.ask(camd.address, wait=0.5).timed_out and time.monotonic() - started >= 0.45
    finally:
        camd.stop()


ANSWER_SECONDS = 1.2


@Pyro4.expose
@Pyro4.behavior(instance_mode='single')
class SlowCamera(SimulatedCamera):
    def report_status(self):
        time.sleep(ANSWER_SECONDS)  # a busy guest, a slow SDK call: slow but healthy
        return super().report_status()


def slow_camd():
    camd = SimulatedCamd(DaemonAddress('camd', 'camd_{}'.format(free_port()), '127.0.0.1', free_port()),
                         'cam1', initialized=True)
    camd.camera.__class__ = SlowCamera
    return camd.start()


def test_a_slow_but_healthy_camd_is_shown_answering_to_a_query_that_came_during_its_call():
    camd = slow_camd()
    probe = CameraProbe(1.0)
    try:
        results = {}
        first = threading.Thread(target=lambda: results.__setitem__('dashboard', probe.query(camd.address)))
        first.start()
        time.sleep(0.5)  # camvirt status (or a second dashboard) asks half a second later
        results['camvirt status'] = probe.query(camd.address)
        first.join(5)
        deadline = time.monotonic() + 3
        while camd.camera.calls < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert camd.camera.calls == 1  # camd answered the one call, at 1.2 s
        # The second query waited only 0.5 s of its 1 s: camd's answer came 0.2 s after it gave up.
        assert results['camvirt status'].status is not None, results['camvirt status'].problem
    finally:
        probe.close()
        camd.stop()
