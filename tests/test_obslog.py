"""Observatory log: every line to stdout at once, and to a real Pyro4 log daemon when it answers."""

import io
import queue
import threading

import Pyro4

from conftest import free_port, wait_until
from rockit.camvirt.obslog import ObservatoryLog
from rockit.camvirt.registry import DaemonAddress


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
    for i in range(2000):
        log.warning('message {}'.format(i))
    assert wait_until(lambda: stream.getvalue().count('WARNING') == 2000)
