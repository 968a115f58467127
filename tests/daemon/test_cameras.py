"""The camera side: bounded report_status() calls to real Pyro4 camds, with connection reuse."""

import time

import Pyro4

from testworld.support import free_port
from rockit.camvirt.daemon.cameras import CameraProbe, wait_until_answering
from rockit.camvirt.shared.registry import DaemonAddress
from testworld.simcamd import HungCamd, SimulatedCamd, SimulatedCamera


@Pyro4.expose
class GlitchingCamera(SimulatedCamera):
    """Raises on the next call when told to, as a camd going away (or its leftovers) may."""

    glitch = False

    def report_status(self):
        if self.glitch:
            self.glitch = False
            raise RuntimeError('unknown object')
        return super().report_status()


def address():
    return DaemonAddress('camd', 'camd_{}'.format(free_port()), '127.0.0.1', free_port())


def test_status_of_an_answering_camd_reuses_one_connection():
    camd = SimulatedCamd(address(), 'cam1').start()
    probe = CameraProbe(timeout=1)
    try:
        for _ in range(5):
            assert probe.status(camd.address)['state'] == 2
        assert camd.camera.calls == 5
        assert len(probe._idle[camd.address.uri]) == 1
    finally:
        probe.close()
        camd.stop()


def test_no_camd_gives_none():
    probe = CameraProbe(timeout=1)
    assert probe.status(address()) is None


def test_hung_camd_gives_none_within_the_timeout():
    hung = HungCamd(address()).start()
    probe = CameraProbe(timeout=0.3)
    try:
        assert probe.status(hung.address) is None
        assert hung.connections() == 1
        assert probe._idle.get(hung.address.uri) in (None, [])
    finally:
        hung.stop()


def test_a_restarted_camd_is_reached_again():
    camd = SimulatedCamd(address(), 'cam1').start()
    probe = CameraProbe(timeout=1)
    try:
        assert probe.status(camd.address) is not None
        camd.stop()
        assert probe.status(camd.address) is None
        camd.start()
        assert probe.status(camd.address) is not None
    finally:
        probe.close()
        camd.stop()


def test_wait_until_answering_stops_when_told_to_give_up():
    probe = CameraProbe(timeout=0.2)
    calls = []
    give_up = lambda: calls.append(1) or len(calls) > 3  # noqa: E731
    assert not wait_until_answering(probe, address(), time.monotonic() + 30, give_up)
    assert len(calls) == 4


def test_wait_until_answering_sees_a_late_camd():
    camd = SimulatedCamd(address(), 'cam1')
    probe = CameraProbe(timeout=0.2)
    asked = []

    def give_up():
        asked.append(1)
        if len(asked) == 3:
            camd.start()
        return False

    try:
        assert wait_until_answering(probe, camd.address, time.monotonic() + 10, give_up)
        assert camd.camera.calls == 1
    finally:
        probe.close()
        camd.stop()


def test_a_kept_connection_that_fails_is_replaced_by_a_new_one():
    camd = SimulatedCamd(address(), 'cam1')
    camd.camera = GlitchingCamera('cam1')
    camd.start()
    probe = CameraProbe(timeout=1)
    try:
        assert probe.status(camd.address) is not None
        camd.camera.glitch = True
        assert probe.status(camd.address) is not None  # asked again, on a new connection
        assert camd.camera.calls == 2
        probe.forget(camd.address)
        camd.camera.glitch = True
        assert probe.status(camd.address) is None  # a new connection failing: not answering
    finally:
        probe.close()
        camd.stop()


def test_a_connection_in_use_when_its_camd_is_forgotten_is_not_kept():
    camd = SimulatedCamd(address(), 'cam1').start()
    probe = CameraProbe(timeout=1)
    try:
        proxy, _reused, generation = probe._take(camd.address.uri)  # a query in flight ...
        probe.forget(camd.address)  # ... when the VM stops
        probe._give_back(camd.address.uri, proxy, generation)
        assert probe._idle.get(camd.address.uri) in (None, [])
        assert probe.status(camd.address) is not None
        assert len(probe._idle[camd.address.uri]) == 1  # later queries are kept again
    finally:
        probe.close()
        camd.stop()
