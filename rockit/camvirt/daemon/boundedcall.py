"""Pyro4 calls to other rockit daemons (camds, the observatory log) bounded as a whole.

Pyro4's own proxy bounds each recv() by its timeout, not the reply: a peer that sends one byte every
half second holds it for as long as it likes, and a reply of any size or compression is read and
inflated. BoundedConnection speaks the same wire (a plain Pyro4 4.82 proxy's CONNECT and INVOKE, serpent)
against one deadline for the whole call, and reads a reply's header before its body.
"""

import select
import socket
import time

import Pyro4.errors
import Pyro4.util
from Pyro4 import message

from ..shared.quoting import one_line, quote

# A report_status() reply is a few hundred bytes and a log call's None a few: anything past this is
# refused unread.
MAX_REPLY_BYTES = 64 * 1024

_SERPENT = Pyro4.util.get_serializer('serpent')
_REFUSED_FLAGS = message.FLAGS_COMPRESSED | message.FLAGS_BATCH | message.FLAGS_ITEMSTREAMRESULT


class CallError(Exception):
    """A call that gave no reply; str() says why, as a phrase after the peer's name ("did not answer in
    time"), for the operators."""


class CallTimeout(CallError):
    """The call's deadline passed."""


class BoundedConnection:
    """One Pyro4 connection to a rockit daemon, made and read by hand so that a deadline bounds the
    whole call (connect, handshake and reply together, however the bytes trickle in) and a reply can
    be refused from its header: compressed, batched or streamed, or larger than MAX_REPLY_BYTES."""

    def __init__(self, address):
        self._address = address
        self._sock = None
        self._seq = 0

    @property
    def open(self):
        return self._sock is not None

    def call(self, method, args, deadline):
        """What the daemon's `method`(*args) returned; CallError when it gives no reply by `deadline`."""
        if self._sock is None:
            self._connect(deadline)
        self._seq = (self._seq + 1) & 0xffff
        data = _SERPENT.dumpsCall(self._address.object_id, method, tuple(args), {})
        self._send(message.Message(message.MSG_INVOKE, data, _SERPENT.serializer_id, 0, self._seq), deadline)
        reply = self._receive(deadline)
        if reply.type != message.MSG_RESULT or reply.seq != self._seq:
            raise CallError('sent a reply out of sequence')
        value = self._deserialize(reply)
        if reply.flags & message.FLAGS_EXCEPTION:
            name = type(value).__name__ if isinstance(value, BaseException) else 'an error'
            raise CallError('raised {}'.format(one_line(name)))
        return value

    def _connect(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CallTimeout('did not answer in time')
        try:
            self._sock = socket.create_connection((self._address.host, self._address.port), timeout=remaining)
        except socket.timeout:
            raise CallTimeout('did not accept a connection in time') from None
        except OSError as e:
            raise CallError('cannot be reached: {}'.format(e.strerror or e)) from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.setblocking(False)
        data = _SERPENT.dumps({'handshake': 'hello'})
        self._send(message.Message(message.MSG_CONNECT, data, _SERPENT.serializer_id, 0, self._seq), deadline)
        reply = self._receive(deadline)
        if reply.type == message.MSG_CONNECTFAIL:
            raise CallError('refused the connection: {}'.format(quote(refusal_text(reply))))
        if reply.type != message.MSG_CONNECTOK:
            raise CallError('answered the handshake with message type {}'.format(reply.type))

    def _send(self, msg, deadline):
        view = memoryview(msg.to_bytes())
        while view:
            self._wait(select.POLLOUT, deadline)
            try:
                view = view[self._sock.send(view):]
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                raise CallError('dropped the connection: {}'.format(e.strerror or e)) from None

    def _receive(self, deadline):
        """The next message, its header checked before its body is read."""
        header = self._read(message.Message.header_size, deadline)
        try:
            msg = message.Message.from_header(header)
        except Pyro4.errors.ProtocolError:
            raise CallError('sent something that is not a Pyro4 message') from None
        if msg.flags & _REFUSED_FLAGS:
            raise CallError('sent a compressed, batched or streamed reply (flags {:#x})'.format(msg.flags))
        # A refused handshake comes in marshal whatever was asked (Pyro4's own choice): read as text below.
        if msg.serializer_id != _SERPENT.serializer_id and msg.type != message.MSG_CONNECTFAIL:
            raise CallError('replied in serializer {}, not serpent'.format(msg.serializer_id))
        size = msg.data_size + msg.annotations_size
        if size > MAX_REPLY_BYTES:
            raise CallError('sent a reply of {} bytes (at most {})'.format(size, MAX_REPLY_BYTES))
        body = self._read(size, deadline)
        msg.data = body[msg.annotations_size:]  # annotations carry nothing camvirtd uses
        return msg

    @staticmethod
    def _deserialize(msg):
        try:
            return _SERPENT.deserializeData(msg.data)
        except Exception:
            raise CallError('sent a reply that does not parse') from None

    def _read(self, size, deadline):
        chunks, left = [], size
        while left:
            self._wait(select.POLLIN, deadline)
            try:
                chunk = self._sock.recv(min(left, 65536))
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                raise CallError('dropped the connection: {}'.format(e.strerror or e)) from None
            if not chunk:
                raise CallError('closed the connection')
            chunks.append(chunk)
            left -= len(chunk)
        return b''.join(chunks)

    def _wait(self, event, deadline):
        remaining = deadline - time.monotonic()
        poller = select.poll()
        poller.register(self._sock, event)
        if remaining <= 0 or not poller.poll(remaining * 1000.0):
            raise CallTimeout('did not answer in time')

    def abort(self):
        """Ends a call in progress from another thread (its reads fail at once)."""
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None


_MARSHAL_ID = 3
_MARSHAL_SHORT_STRINGS = (0x5a, 0x7a, 0xda, 0xfa)  # short ASCII, interned or not, referenced or not


def refusal_text(msg):
    """The reason of a refused handshake as text, never deserialized: its printable ASCII, after the
    type and length bytes of marshal's short string (what Pyro4 sends it in)."""
    data = msg.data
    if msg.serializer_id == _MARSHAL_ID and len(data) > 2 and data[0] in _MARSHAL_SHORT_STRINGS:
        data = data[2:]
    return ''.join(chr(b) for b in data if 32 <= b < 127).strip()

