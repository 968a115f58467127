"""The test world's camd behaves as a real one does: a 40-worker Pyro4 thread pool that refuses the
41st client, report_status() behind the camera lock, {'state': 0} until initialised."""

import threading
import time

import Pyro4
import Pyro4.errors
import pytest

from rockit.camvirt.shared.constants import CameraState
from rockit.camvirt.shared.registry import DaemonAddress
from testworld.simcamd import (
    BLOCKED,
    CAMD_WORKERS,
    COOLER_LOCKED,
    INITIALISING,
    SUCCEEDED,
    DrippingCamd,
    SimulatedCamd,
    start_camd,
)
from testworld.support import free_port


def address():
    return DaemonAddress('camd', 'camd_{}'.format(free_port()), '127.0.0.1', free_port())


def proxy(camd, timeout=5):
    p = Pyro4.Proxy(camd.address.uri)
    p._pyroTimeout = timeout
    return p


def test_a_camd_answers_state_0_alone_until_its_camera_is_initialised():
    camd = SimulatedCamd(address(), 'cam1', initialize_seconds=0.3).start()
    try:
        with proxy(camd) as p:
            assert p.report_status() == {'state': CameraState.Disabled}
            assert p.initialize() == SUCCEEDED
            status = p.report_status()
        assert status['state'] == CameraState.Idle
        assert status['cooler_mode'] != COOLER_LOCKED  # still cooling down
    finally:
        camd.stop()


def test_report_status_waits_on_the_camera_lock_while_initialising():
    camd = start_camd(address(), 'cam1', INITIALISING, initialize_seconds=3.0)
    try:
        deadline = time.monotonic() + 5
        while camd.camera.state != CameraState.Initializing and time.monotonic() < deadline:
            time.sleep(0.01)
        with proxy(camd, timeout=0.3) as p:
            with pytest.raises(Pyro4.errors.TimeoutError):
                p.report_status()
        with proxy(camd) as p:
            assert p.initialize() == BLOCKED  # one command at a time
            assert p.report_status()['state'] == CameraState.Idle  # once initialize() let go
    finally:
        camd.stop()


def test_the_41st_client_is_refused_and_workers_stay_held_by_idle_connections():
    camd = SimulatedCamd(address(), 'cam1', initialized=True).start()
    held = []
    try:
        for _ in range(CAMD_WORKERS):
            p = proxy(camd)
            p._pyroBind()
            held.append(p)
        with pytest.raises(Pyro4.errors.CommunicationError, match='no free workers'):
            proxy(camd).report_status()
        assert camd.connections() == CAMD_WORKERS and camd.refused() == 1
        held.pop()._pyroRelease()
        deadline = time.monotonic() + 5
        while camd.connections() == CAMD_WORKERS and time.monotonic() < deadline:
            time.sleep(0.01)
        with proxy(camd) as p:
            assert p.report_status()['state'] == CameraState.Idle
        assert camd.most_connections() == CAMD_WORKERS
    finally:
        for p in held:
            p._pyroRelease()
        camd.stop()


def test_a_dripping_camd_holds_a_client_whose_timeout_bounds_each_recv():
    camd = DrippingCamd(address(), interval=0.05).start()
    outcome = []
    try:
        p = proxy(camd, timeout=0.5)
        thread = threading.Thread(target=lambda: outcome.append(_call(p)), daemon=True)
        thread.start()
        thread.join(2.0)
        assert thread.is_alive() and camd.bytes_sent > 10  # 4 times its timeout, still reading
    finally:
        camd.stop()
        thread.join(5)


def _call(p):
    try:
        return p.report_status()
    except Pyro4.errors.PyroError as e:
        return e
