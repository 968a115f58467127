"""The delaying TCP relay (testworld/delayrelay.py) on loopback: bytes arrive whole, in order and
late by its delay each way; ends of connections pass through."""

import socket
import threading
import time

import pytest

from testworld.site.delayrelay import DelayingRelay
from testworld.support import free_port

DELAY = 0.05


class EchoServer:
    """Echoes what each connection sends until it closes its side, then closes."""

    def __init__(self):
        self.port = free_port()
        self._listener = socket.create_server(('127.0.0.1', self.port))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self._listener.close()


@pytest.fixture
def relay():
    echo = EchoServer()
    started = DelayingRelay(('127.0.0.1', free_port()), ('127.0.0.1', echo.port), DELAY).start()
    yield started
    started.stop()
    echo.close()


def connect(relay):
    sock = socket.create_connection(relay.listen, timeout=10)
    return sock


def receive(sock, size):
    data = b''
    while len(data) < size:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_round_trip_through_the_relay_takes_its_delay_each_way(relay):
    with connect(relay) as sock:
        for _ in range(3):
            started = time.monotonic()
            sock.sendall(b'ping')
            assert receive(sock, 4) == b'ping'
            assert time.monotonic() - started >= 2 * DELAY


def test_a_megabyte_arrives_whole_and_in_order_and_the_close_passes_through(relay):
    payload = bytes(range(256)) * 4096
    with connect(relay) as sock:
        sender = threading.Thread(target=lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)))
        sender.start()
        assert receive(sock, len(payload) + 1) == payload  # then the echo server's close reached us
        sender.join(10)


def test_a_connection_to_a_target_that_does_not_listen_is_closed():
    relay = DelayingRelay(('127.0.0.1', free_port()), ('127.0.0.1', free_port()), DELAY).start()
    try:
        with connect(relay) as sock:
            try:
                assert sock.recv(10) == b''
            except ConnectionResetError:
                pass
    finally:
        relay.stop()


def test_an_address_in_use_is_an_oserror_at_start(relay):
    with pytest.raises(OSError):
        DelayingRelay(relay.listen, relay.target, DELAY).start()
