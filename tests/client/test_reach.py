"""An unreachable camvirtd explained: real Pyro4 proxies against loopback ports where nothing listens,
where something else answers, where nobody replies, and against a Pyro daemon without our object."""

import socket
import threading

import Pyro4
import Pyro4.errors
import pytest

from rockit.camvirt.client.reach import classify, next_checks, unit_name, unreachable_lines
from rockit.camvirt.shared.registry import DaemonAddress
from testworld.support import free_port


class FakeConfig:  # only what unreachable_lines reads: our own plain data, no behaviour
    def __init__(self, port, object_id='camvirt_daemon'):
        self.daemon = DaemonAddress('camvirt', object_id, '127.0.0.1', port)
        self.path = '/etc/camvirtd/sting_das1.json'


def error_from(uri, timeout=2):
    with Pyro4.Proxy(uri) as proxy:
        proxy._pyroTimeout = timeout
        with pytest.raises(Pyro4.errors.PyroError) as caught:
            proxy.report_status()
    return caught.value


class OneShotServer:
    """A loopback TCP server that does `action(connection)` with each connection, on a thread it owns."""

    def __init__(self, action):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self._action = action
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        try:
            connection, _ = self.sock.accept()
        except OSError:
            return  # closed by the test
        with connection:
            self._action(connection)

    def close(self):
        self.sock.close()
        self._thread.join(timeout=5)


def test_nothing_listens():
    port = free_port()
    config = FakeConfig(port)
    error = error_from(config.daemon.uri)
    assert classify(error, 2) == ('connection refused: nothing listens on that port', 'down')
    lines = unreachable_lines(config, error, 2)
    assert lines[0] == 'cannot reach camvirtd at 127.0.0.1:{0} (PYRO:camvirt_daemon@127.0.0.1:{0}): ' \
        'connection refused: nothing listens on that port'.format(port)
    assert lines[1] == '  check: is camvirtd@sting_das1 running on 127.0.0.1? ' \
        '(systemctl status camvirtd@sting_das1; journalctl -u camvirtd@sting_das1)'


def test_something_else_answers():
    server = OneShotServer(lambda c: c.sendall(b'HTTP/1.0 400 Bad Request\r\n\r\n' * 4))
    try:
        reason, kind = classify(error_from(FakeConfig(server.port).daemon.uri), 2)
    finally:
        server.close()
    assert kind == 'other' and reason.startswith('something answers there but it does not speak Pyro4')


def test_connection_closed_at_once():
    server = OneShotServer(lambda c: None)
    try:
        reason, kind = classify(error_from(FakeConfig(server.port).daemon.uri), 2)
    finally:
        server.close()
    assert kind == 'closed', reason


def test_a_pyro_daemon_without_our_object():
    daemon = Pyro4.Daemon(host='127.0.0.1', port=0)
    thread = threading.Thread(target=daemon.requestLoop, daemon=True)
    thread.start()
    try:
        reason, kind = classify(error_from('PYRO:nosuch@127.0.0.1:{}'.format(daemon.locationStr.split(':')[1])), 2)
    finally:
        daemon.shutdown()
        thread.join(timeout=5)
        daemon.close()
    assert kind == 'other' and reason.startswith('something answers there but it is not this camvirtd'), reason


def test_network_advice_names_host_port_and_unit():
    checks = next_checks('network', DaemonAddress('x', 'o', '10.2.6.173', 9012), '/etc/camvirtd/sting_das1.json')
    assert checks[0] == 'is 10.2.6.173 up and reachable from here? (ping 10.2.6.173)'
    assert checks[1] == 'is port 9012/tcp open on 10.2.6.173? (firewall-cmd --list-ports)'
    assert 'camvirtd@sting_das1' in checks[2]


def test_unit_name():
    assert unit_name('/etc/camvirtd/clasp_cmos.json') == 'camvirtd@clasp_cmos'
    assert unit_name(None) == 'camvirtd@<config>'
