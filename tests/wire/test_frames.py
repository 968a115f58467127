"""Reading Pyro4 messages off a socket pair: complete, partial, closed, refused before parsing."""

import socket

import Pyro4.util
import pytest
from Pyro4 import message

from rockit.camvirt.wire.frames import (
    CLOSED,
    COMPLETE,
    HEADER_SIZE,
    PARTIAL,
    BufferedConnection,
    Client,
    WireRefusal,
    read_message,
    refusal_reply,
)
from testworld import attacks


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield Client(ours, 'test', 0, send_timeout=1), theirs
    ours.close()
    theirs.close()


def test_a_complete_message_is_read_and_nothing_after_it(pair):
    client, theirs = pair
    first = attacks.connect_message('obj')
    theirs.sendall(first + b'PYRO')
    assert read_message(client, 65536) == COMPLETE
    assert client.take_message() == first
    assert read_message(client, 65536) == PARTIAL  # 4 bytes of the next header so far


def test_a_message_in_pieces_is_partial_until_its_end(pair):
    client, theirs = pair
    whole = attacks.connect_message('obj')
    theirs.sendall(whole[:10])
    assert read_message(client, 65536) == PARTIAL
    theirs.sendall(whole[10:])
    assert read_message(client, 65536) == COMPLETE


def test_a_closed_connection_is_closed(pair):
    client, theirs = pair
    theirs.close()
    assert read_message(client, 65536) == CLOSED


@pytest.mark.parametrize('data, why', [
    (attacks.header(message.MSG_CONNECT, 10 * 2 ** 20), 'message too large'),
    (attacks.header(message.MSG_CONNECT, 0x7fffffff), 'message too large'),
    (attacks.header(message.MSG_INVOKE, 10) + b'x' * 10, 'unexpected message type'),  # before the handshake
    (attacks.header(message.MSG_CONNECT, 10, flags=message.FLAGS_META_ON_CONNECT | message.FLAGS_COMPRESSED)
     + b'x' * 10, 'flags'),
    (b'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 'not a Pyro message'),
    (attacks.connect_message('obj', Pyro4.util.get_serializer('marshal')), 'serializer'),
    (message.Message(message.MSG_CONNECT, b'[' + b'{},' * 300 + b'{}]', attacks.SERPENT.serializer_id,
                     message.FLAGS_META_ON_CONNECT, 0).to_bytes(), 'too many values'),
])
def test_refusals_are_made_before_parsing(pair, data, why):
    client, theirs = pair
    theirs.sendall(data)
    outcome = read_message(client, 65536)
    assert isinstance(outcome, WireRefusal) and outcome.why == why
    if why == 'message too large':
        assert len(client.buffer) == HEADER_SIZE  # the body was not read


def test_a_refusal_reply_is_a_pyro_answer_in_a_safe_serializer():
    header = message.Message.from_header(attacks.header(message.MSG_CONNECT, 10 ** 7))
    reply = message.Message.from_header(refusal_reply(header, 'message too large')[:HEADER_SIZE])
    assert reply.type == message.MSG_CONNECTFAIL
    pickled = message.Message.from_header(attacks.header(message.MSG_CONNECT, 10, serializer_id=4))
    assert refusal_reply(pickled, 'serializer') is None


def test_a_reply_that_cannot_leave_in_time_times_out(pair):
    client, _ = pair
    with pytest.raises(Pyro4.errors.TimeoutError):
        client.conn.send(b'x' * (64 * 2 ** 20))  # nobody reads the other end


def test_the_buffered_connection_gives_exactly_the_message():
    ours, theirs = socket.socketpair()
    try:
        conn = BufferedConnection(ours, 1)
        conn.feed(b'abcdef')
        assert conn.recv(2) == b'ab' and conn.recv(4) == b'cdef'
        with pytest.raises(Pyro4.errors.ConnectionClosedError):
            conn.recv(1)
    finally:
        ours.close()
        theirs.close()
