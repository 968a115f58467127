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
        self.privileged = False  # from a control machine
        self.problem = None  # why it is refused once read (decided from its header), or None

    @property
    def sock(self):
        return self.conn.sock

    def take_message(self):
        data = bytes(self.buffer)
        self.buffer = bytearray()
        self.expected = HEADER_SIZE
        return data


# What rockit's callers send, and nothing else. A plain Pyro4 4.82 proxy (serpent, default config)
# sends a CONNECT asking for the object's metadata, then INVOKE messages with no flags: it sets
# FLAGS_ONEWAY only for methods the metadata marks oneway (camvirtd marks none), FLAGS_COMPRESSED only
# with COMPRESSION on, FLAGS_BATCH only through Pyro4.batch, and never sends a PING.
FLAGS_ALLOWED = {message.MSG_CONNECT: message.FLAGS_META_ON_CONNECT, message.MSG_INVOKE: 0}
# A proxy used inside a Pyro4 handler passes on the correlation id it was called with: one annotation,
# 'CORR', 16 bytes (a chunk is a 4-byte name, a 2-byte length and the value).
CORR_CHUNK = b'CORR' + (16).to_bytes(2, 'big')
CORR_SIZE = len(CORR_CHUNK) + 16
TYPE_NAMES = {message.MSG_CONNECT: 'CONNECT', message.MSG_CONNECTOK: 'CONNECTOK',
              message.MSG_CONNECTFAIL: 'CONNECTFAIL', message.MSG_INVOKE: 'INVOKE',
              message.MSG_RESULT: 'RESULT', message.MSG_PING: 'PING'}
FLAG_NAMES = {message.FLAGS_EXCEPTION: 'exception', message.FLAGS_COMPRESSED: 'compressed',
              message.FLAGS_ONEWAY: 'oneway', message.FLAGS_BATCH: 'batch',
              message.FLAGS_META_ON_CONNECT: 'meta on connect', message.FLAGS_ITEMSTREAMRESULT: 'item stream',
              message.FLAGS_KEEPSERIALIZED: 'keep serialized'}


def size_problem(header, limit):
    """Why a message with this header is refused before its body is read, or None."""
    size = header.data_size + header.annotations_size
    if header.data_size < 0 or size > limit:
        return 'message too large', '{} bytes declared, the limit is {}'.format(size, limit)
    return None


def header_problem(header, handshaken):
    """Why a message with this header is not one rockit's callers send, or None: decided from the header
    alone, so that nothing of a refused message is ever parsed."""
    expected = message.MSG_INVOKE if handshaken else message.MSG_CONNECT
    if header.type != expected:
        return 'unexpected message type', '{} where camvirtd takes {}'.format(
            TYPE_NAMES.get(header.type, 'type {}'.format(header.type)), TYPE_NAMES[expected])
    if header.serializer_id != SERPENT_ID:
        return 'serializer', 'camvirtd accepts serpent only, not {}'.format(
            SERIALIZER_NAMES.get(header.serializer_id, 'serializer id {}'.format(header.serializer_id)))
    if header.flags != FLAGS_ALLOWED[expected]:
        return 'flags', '{} {}: camvirtd takes {}'.format(
            TYPE_NAMES[expected], describe_flags(header.flags), describe_flags(FLAGS_ALLOWED[expected]))
    if header.annotations_size not in (0, CORR_SIZE):
        return 'annotations', '{} bytes of annotations: camvirtd takes a CORR id alone'.format(header.annotations_size)
    return None


def annotations_problem(data, header):
    """Why the annotations of a complete message (of an allowed size) are refused, or None."""
    if header.annotations_size and not data[HEADER_SIZE:HEADER_SIZE + len(CORR_CHUNK)] == CORR_CHUNK:
        return 'annotations', 'camvirtd takes a CORR id alone'
    return None


# What parsing costs is the number of values in a message, not its size: 8 KiB of `{},{},...` takes
# 21 ms and 4.3 MB to parse, the largest valid request (32 domain names) 0.1 ms. A value is counted,
# before parsing, by the commas and opening brackets in the body (in strings too, which only errs on
# the strict side): a real request has under 40, a malformed one of a plausible size (a hundred names)
# about 105; 256 of the costliest kind parse in a few ms within 0.5 MB.
MAX_VALUES = 256
VALUE_MARKS = (b',', b'[', b'(', b'{')


def values_problem(data, header, limit=MAX_VALUES):
    """Why the body of a complete message holds too many values to parse, or None."""
    start = HEADER_SIZE + header.annotations_size
    count = sum(data.count(mark, start) for mark in VALUE_MARKS)
    if count > limit:
        return 'too many values', 'about {} values in {} bytes, the limit is {}'.format(
            count, header.data_size, limit)
    return None


def describe_flags(flags):
    if not flags:
        return 'no flags'
    names = [name for bit, name in FLAG_NAMES.items() if flags & bit]
    unknown = flags & ~sum(FLAG_NAMES)
    return '+'.join(names + (['0x{:x}'.format(unknown)] if unknown else [])) + ' flags'


# What read_message() found.
COMPLETE, PARTIAL, CLOSED = 'complete', 'partial', 'closed'


class WireRefusal:
    """A message refused before it is parsed: why (counted), detail, and its header when it had one
    (then the caller is told why)."""

    def __init__(self, why, detail, header=None):
        self.why, self.detail, self.header = why, detail, header


def read_message(client, limit):
    """Reads what has arrived of the client's current message, never past its end, from its
    non-blocking socket. COMPLETE (client.buffer holds it), PARTIAL (the rest is still to come),
    CLOSED, or a WireRefusal: a header that is not Pyro's or declares more than `limit` bytes is refused
    before the body is read; a message that is not what rockit's callers send (header_problem) or
    holds more values than a real request (values_problem), once the (bounded) body is read, unparsed,
    so that the caller reads the refusal instead of a reset."""
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
                return WireRefusal('not a Pyro message', str(e))
            problem = size_problem(header, limit)
            if problem:
                return WireRefusal(*problem, header=header)
            client.header = header
            client.problem = header_problem(header, client.handshaken)
            client.expected = HEADER_SIZE + header.annotations_size + header.data_size
            if len(client.buffer) < client.expected:
                continue
        problem = client.problem or annotations_problem(client.buffer, client.header) or \
            values_problem(client.buffer, client.header)
        return WireRefusal(*problem, header=client.header) if problem else COMPLETE


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
