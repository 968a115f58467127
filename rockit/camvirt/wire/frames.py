"""Pyro4 messages as camvirtd's server reads them: framing from a non-blocking socket, the checks made
before a message is parsed, and the connection object Pyro's Daemon handles a read message with."""

import select
import time

import Pyro4.errors
import Pyro4.util
from Pyro4 import message, socketutil

SERPENT_ID = Pyro4.util.get_serializer('serpent').serializer_id
SERIALIZER_NAMES = {1: 'serpent', 2: 'json', 3: 'marshal', 4: 'pickle', 5: 'dill', 6: 'msgpack'}
# Serializers a refusal is answered in (it serializes only our own message): the caller then reads
# why. Never pickle or dill, whose readers run what they read.
ANSWERED_SERIALIZERS = {'serpent', 'json', 'marshal'}
HEADER_SIZE = message.Message.header_size


class BufferedConnection(socketutil.SocketConnection):
    """A client connection as Pyro's Daemon sees it: recv() gives the bytes of the one complete
    message the selector thread read, send() writes to the (non-blocking) socket within a deadline."""

    def __init__(self, sock, send_timeout):
        super().__init__(sock)
        self._input = memoryview(b'')
        self._position = 0
        self._send_timeout = send_timeout

    def send(self, data):
        """All of `data` within send_timeout, else Pyro's TimeoutError; ConnectionClosedError when the
        caller is gone."""
        view = memoryview(data)
        deadline = time.monotonic() + self._send_timeout
        while view:
            try:
                view = view[self.sock.send(view):]
            except (BlockingIOError, InterruptedError):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not writable(self.sock, remaining):
                    raise Pyro4.errors.TimeoutError('sending: timeout') from None
            except OSError as e:
                raise Pyro4.errors.ConnectionClosedError('sending: connection lost: {}'.format(e)) from None

    def feed(self, data):
        self._input = memoryview(data)
        self._position = 0

    def recv(self, size):
        end = self._position + size
        if end > len(self._input):
            raise Pyro4.errors.ConnectionClosedError('message ended early')
        chunk = self._input[self._position:end].tobytes()
        self._position = end
        return chunk


def writable(sock, seconds):
    """Waits until `sock` can take more data; False after `seconds`. poll(), not select(): file
    descriptors may go beyond select()'s 1024."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(seconds * 1000.0))


class Client:
    """One accepted connection and the message being read from it."""

    def __init__(self, sock, source, deadline, send_timeout):
        self.conn = BufferedConnection(sock, send_timeout)
        self.fd = sock.fileno()
        self.source = source
        self.buffer = bytearray()
        self.expected = HEADER_SIZE
        self.deadline = deadline
        self.handshaken = False
        self.busy = False
        self.header = None  # of the message being read

    @property
    def sock(self):
        return self.conn.sock

    def take_message(self):
        data = bytes(self.buffer)
        self.buffer = bytearray()
        self.expected = HEADER_SIZE
        return data


def header_problem(header, handshaken, limit):
    """Why a message with this header is refused before its body is read, or None."""
    size = header.data_size + header.annotations_size
    if header.data_size < 0 or size > limit:
        return 'message too large', '{} bytes declared, the limit is {}'.format(size, limit)
    allowed = (message.MSG_INVOKE, message.MSG_PING) if handshaken else (message.MSG_CONNECT,)
    if header.type not in allowed:
        return 'unexpected message type', str(header.type)
    return None


def serializer_problem(header):
    """Why a complete message is refused unparsed for its serializer, or None. Checked once the
    (bounded) message is read, so that the caller's socket has nothing unread when it is closed and
    reads the refusal instead of a reset."""
    if header.type == message.MSG_PING or header.serializer_id == SERPENT_ID:  # a ping's data is not read
        return None
    return 'serializer', 'camvirtd accepts serpent only, not {}'.format(
        SERIALIZER_NAMES.get(header.serializer_id, 'serializer id {}'.format(header.serializer_id)))


# What read_message() found.
COMPLETE, PARTIAL, CLOSED = 'complete', 'partial', 'closed'


class Refusal:
    """A message refused before it is parsed: why (counted), detail, and its header when it had one
    (then the caller is told why)."""

    def __init__(self, why, detail, header=None):
        self.why, self.detail, self.header = why, detail, header


def read_message(client, limit):
    """Reads what has arrived of the client's current message, never past its end, from its
    non-blocking socket. COMPLETE (client.buffer holds it), PARTIAL (the rest is still to come),
    CLOSED, or a Refusal: a header that is not Pyro's, declares more than `limit` bytes or a
    message type out of turn is refused before the body is read; a serializer other than serpent
    once the (bounded) body is read, so that the caller reads the refusal instead of a reset."""
    while True:
        try:
            data = client.sock.recv(min(client.expected - len(client.buffer), 65536))
        except (BlockingIOError, InterruptedError):
            return PARTIAL
        except OSError:
            return CLOSED
        if not data:
            return CLOSED
        client.buffer += data
        if len(client.buffer) < client.expected:
            continue
        if client.expected == HEADER_SIZE:
            try:
                header = message.Message.from_header(bytes(client.buffer))
            except Pyro4.errors.ProtocolError as e:
                return Refusal('not a Pyro message', str(e))
            problem = header_problem(header, client.handshaken, limit)
            if problem:
                return Refusal(*problem, header=header)
            client.header = header
            client.expected = HEADER_SIZE + header.annotations_size + header.data_size
            if len(client.buffer) < client.expected:
                continue
        problem = serializer_problem(client.header)
        return Refusal(*problem, header=client.header) if problem else COMPLETE


def readable(sock, seconds):
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(seconds * 1000.0))


def refusal_reply(header, text):
    """The bytes of a reply that tells a refused message's sender why (a plain Pyro4 client raises an
    error with `text`), in its own serializer when that is a safe one; None otherwise."""
    if SERIALIZER_NAMES.get(header.serializer_id) not in ANSWERED_SERIALIZERS:
        return None
    serializer = Pyro4.util.get_serializer_by_id(header.serializer_id)
    if header.type == message.MSG_CONNECT:
        data, _ = serializer.serializeData('camvirtd refused the connection: ' + text)
        return message.Message(message.MSG_CONNECTFAIL, data, header.serializer_id, 0, header.seq).to_bytes()
    data, _ = serializer.serializeData(Pyro4.errors.ProtocolError('camvirtd refused the request: ' + text))
    return message.Message(message.MSG_RESULT, data, header.serializer_id, message.FLAGS_EXCEPTION,
                           header.seq).to_bytes()
