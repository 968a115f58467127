"""Observatory log: every line to stdout at once, and to a real Pyro4 log daemon when it answers."""

import io
import os
import queue
import signal
import subprocess
import threading
import time

import Pyro4

from rockit.camvirt.daemon.obslog import CLOSE_TIMEOUT, LOG_CALL_TIMEOUT, ObservatoryLog
from rockit.camvirt.shared.registry import DaemonAddress
from testworld.support import REPO, free_port, write_one_camera_files


@Pyro4.expose
class LogDaemon:
    """What the rockit observatory log daemon exposes."""

    def __init__(self):
        self.received = queue.Queue()

    def log_info(self, table, message):
        self.received.put(('info', table, message))

    def log_warning(self, table, message):
        self.received.put(('warning', table, message))

    def log_error(self, table, message):
        self.received.put(('error', table, message))


def test_lines_reach_stdout_and_the_log_daemon():
    server = LogDaemon()
    pyro = Pyro4.Daemon(host='127.0.0.1', port=free_port())
    uri = pyro.register(server, objectId='observatory_log_daemon')
    threading.Thread(target=pyro.requestLoop, daemon=True).start()
    try:
        stream = io.StringIO()
        address = DaemonAddress('observatory_log', uri.object, uri.host, uri.port)
        log = ObservatoryLog('camvirtd@test', address, stream=stream)
        log.info('initialize requested')
        log.error('camera cam1 did not answer')
        assert server.received.get(timeout=5) == ('info', 'camvirtd@test', 'initialize requested')
        assert server.received.get(timeout=5) == ('error', 'camvirtd@test', 'camera cam1 did not answer')
        lines = stream.getvalue().splitlines()
        assert lines[0].endswith('INFO: initialize requested')
        assert lines[1].endswith('ERROR: camera cam1 did not answer')
    finally:
        pyro.shutdown()


def test_an_unreachable_log_daemon_costs_the_caller_nothing():
    stream = io.StringIO()
    address = DaemonAddress('observatory_log', 'observatory_log_daemon', '127.0.0.1', free_port())
    log = ObservatoryLog('camvirtd@test', address, stream=stream)
    started = time.monotonic()
    for i in range(2000):
        log.warning('message {}'.format(i))
    # Each line printed at once: the caller never waits for the log daemon (a send that did would
    # cost a refused connection each, or LOG_CALL_TIMEOUT against an address that drops packets).
    assert stream.getvalue().count('WARNING') == 2000
    assert time.monotonic() - started < 1.0  # generous: about 0.05 s here
    started = time.monotonic()
    log.close()
    assert time.monotonic() - started < CLOSE_TIMEOUT + 1


def test_lines_logged_just_before_sigterm_reach_the_log_daemon(tmp_path):
    server = LogDaemon()
    pyro = Pyro4.Daemon(host='127.0.0.1', port=free_port())
    uri = pyro.register(server, objectId='observatory_log_daemon')
    threading.Thread(target=pyro.requestLoop, daemon=True).start()
    registry, config, _port = write_one_camera_files(
        tmp_path, log_daemon={'object_id': uri.object, 'host': uri.host, 'port': uri.port})
    daemon = subprocess.Popen([os.path.join(REPO, 'camvirtd'), config, '--state-dir', str(tmp_path / 'state')],
                              stdout=subprocess.PIPE, text=True, env=dict(os.environ, CAMVIRTD_REGISTRY=registry))
    try:
        assert any('camvirtd serving' in line for line in iter(daemon.stdout.readline, ''))
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
    finally:
        daemon.kill()
        daemon.communicate()
        pyro.shutdown()
    received = []
    while not server.received.empty():
        received.append(server.received.get())
    assert ('info', 'camvirtd@test', 'camvirtd stopped') in received, received


def test_a_log_daemon_dripping_its_reply_holds_the_sender_no_longer_than_one_call():
    from testworld.simcamd import DrippingCamd
    dripping = DrippingCamd(DaemonAddress('observatory_log', 'observatory_log_daemon', '127.0.0.1', free_port()),
                            declared=10_000, interval=0.1).start()
    try:
        log = ObservatoryLog('camvirtd@test', dripping.address, stream=io.StringIO())
        log.info('one line')
        sender = log._sender
        started = time.monotonic()
        log.close(timeout=30)
        assert time.monotonic() - started < LOG_CALL_TIMEOUT + 1  # not 10 kB at 10 bytes a second
        assert not sender.is_alive()
    finally:
        dripping.stop()
