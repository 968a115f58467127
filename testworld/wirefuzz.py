"""A fuzzer of camvirtd's wire: random Pyro4 messages (every message type, flag combination,
serializer id, annotation, size; headers that lie about the size; bodies of valid calls, random bytes,
compressed bombs and costly serpent), written whole, split across writes or pipelined, ended by a close
or a reset, from loopback addresses that are not control machines. Hypothesis makes the cases; the
test (tests/e2e/test_e2e_fuzz.py, `make fuzz`) checks camvirtd's invariants after each batch.
Loopback only; every wait is bounded."""

import itertools
import select
import socket
import struct
import time
import zlib

from hypothesis import strategies as st
from Pyro4 import constants, message

from testworld import attacks

# Sources: 127.0.1.0-127.0.3.255, taken in turn, so that no one address is refused often enough to be
# treated as a flood (camvirtd then stops serving it, and the fuzzer would test nothing).
SOURCES = ['127.0.{}.{}'.format(b, c) for b in range(1, 4) for c in range(256)]
_next_source = itertools.cycle(SOURCES)
REPLY_WAIT = 0.2  # how long a case reads replies before it ends its connection
HEADER_FORMAT = '!4sHHHHiHHHH'
CHECKSUM_MAGIC = message.Message.checksum_magic
METHODS = ['initialize', 'shutdown', 'report_status', 'report_camera_status', '__getattr__', 'close',
           '_commands', 'get_metadata', 'ping', 'x']
FLAG_BITS = [message.FLAGS_EXCEPTION, message.FLAGS_COMPRESSED, message.FLAGS_ONEWAY, message.FLAGS_BATCH,
             message.FLAGS_META_ON_CONNECT, message.FLAGS_ITEMSTREAMRESULT, message.FLAGS_KEEPSERIALIZED]

serpent_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.text(max_size=80) | st.floats(),
    lambda children: st.lists(children, max_size=8) | st.tuples(children, children) |
    st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=40)


@st.composite
def bodies(draw, object_id):
    kind = draw(st.sampled_from(['call', 'connect', 'bytes', 'bomb', 'costly', 'batch', 'empty']))
    if kind == 'call':
        method = draw(st.sampled_from(METHODS) | st.text(max_size=20))
        target = draw(st.sampled_from([object_id, constants.DAEMON_NAME]) | st.text(max_size=20))
        args = draw(st.lists(serpent_values, max_size=3))
        return attacks.SERPENT.serializeCall(target, method, tuple(args), {})[0]
    if kind == 'connect':
        return attacks.SERPENT.serializeData({'handshake': 'hello', 'object': object_id})[0]
    if kind == 'bytes':
        return draw(st.binary(max_size=12000))
    if kind == 'bomb':  # small compressed, large inflated
        return zlib.compress(b'[' + b'1,' * draw(st.integers(1, 1000000)) + b'1]', 9)
    if kind == 'costly':  # the costliest serpent to parse, near the size limit
        return b'[' + b'{},' * draw(st.integers(1, 4000)) + b'{}]'
    if kind == 'batch':
        calls = [('report_status', (), {})] * draw(st.integers(1, 300))
        return attacks.SERPENT.serializeCall(object_id, '<batch>', calls, {})[0]
    return b''


@st.composite
def messages(draw, object_id):
    data = draw(bodies(object_id))
    if draw(st.booleans()):  # a header as a plain proxy writes it, so that the body is what is tried
        msg_type = draw(st.sampled_from([message.MSG_INVOKE, message.MSG_INVOKE, message.MSG_CONNECT]))
        flags = draw(st.sampled_from([0, 0, message.FLAGS_META_ON_CONNECT]))
        serializer_id = 1
        annotations = draw(st.sampled_from([{}, {b'CORR': b'c' * 16}]))
    else:
        msg_type = draw(st.sampled_from([1, 2, 3, 4, 5, 6]) | st.integers(0, 0xffff))
        flags = draw(st.sets(st.sampled_from(FLAG_BITS)).map(sum) | st.integers(0, 0xffff))
        serializer_id = draw(st.sampled_from([1, 1, 1, 2, 3, 4, 5, 6]) | st.integers(0, 0xffff))
        annotations = draw(st.sampled_from([{}, {}, {b'CORR': b'c' * 16}]) |
                           st.dictionaries(st.binary(min_size=4, max_size=4), st.binary(max_size=64), max_size=3))
    chunk = b''.join(k + struct.pack('!H', len(v)) + v for k, v in annotations.items())
    # Headers that lie: the declared size more or less than what is sent, a bad checksum.
    data_size = len(data) + draw(st.sampled_from([0, 0, 0, 0, 1, -1]) | st.integers(-2 ** 31, 2 ** 31 - 1))
    data_size = max(-2 ** 31, min(2 ** 31 - 1, data_size))
    seq = draw(st.integers(0, 0xffff))
    checksum = (msg_type + constants.PROTOCOL_VERSION + data_size + len(chunk) + flags + serializer_id + seq
                + CHECKSUM_MAGIC) & 0xffff
    checksum ^= draw(st.sampled_from([0, 0, 0, 0, 0, 0, 0, 1]))
    header = struct.pack(HEADER_FORMAT, b'PYRO', constants.PROTOCOL_VERSION, msg_type & 0xffff, flags & 0xffff,
                         seq, data_size, serializer_id & 0xffff, len(chunk) & 0xffff, 0, checksum)
    return header + chunk + data


@st.composite
def cases(draw, object_id):
    """One connection's worth: whether it handshakes first, its messages, how they are written, how
    the connection ends."""
    return {
        'handshake': draw(st.booleans()),
        'messages': draw(st.lists(messages(object_id), min_size=1, max_size=4)),
        'pipelined': draw(st.booleans()),
        'splits': draw(st.lists(st.integers(1, 4096), max_size=6)),
        'ending': draw(st.sampled_from(['close', 'reset', 'half-close'])),
    }


def run_case(host, port, object_id, case):
    """Sends one case from the next source address; what came back (bytes) until the server closed
    the connection or REPLY_WAIT passed."""
    source = next(_next_source)
    try:
        sock = attacks.handshake(host, port, object_id, source) if case['handshake'] else \
            attacks.connect(host, port, source)
    except (OSError, ConnectionError):
        return b''  # refused at connect or in the handshake (a flooding source): a refusal like any other
    received = bytearray()
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        writes = [b''.join(case['messages'])] if case['pipelined'] else case['messages']
        for data in writes:
            for piece in _split(data, case['splits']):
                sock.sendall(piece)
            received += _read_for(sock, 0.0 if case['pipelined'] else REPLY_WAIT / 4)
        if case['ending'] == 'half-close':
            sock.shutdown(socket.SHUT_WR)
        received += _read_for(sock, REPLY_WAIT)
    except OSError:
        pass  # the server closed or reset it
    finally:
        if case['ending'] == 'reset':
            attacks.reset(sock)
        else:
            sock.close()
    return bytes(received)


def _split(data, sizes):
    position = 0
    for size in sizes:
        if position >= len(data):
            return
        yield data[position:position + size]
        position += size
    if position < len(data):
        yield data[position:]


def _read_for(sock, seconds):
    """What arrives within `seconds` (at most 1 MB), ending early when the server closes."""
    received = bytearray()
    deadline = time.monotonic() + seconds
    while len(received) < 2 ** 20:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([sock], [], [], remaining)[0]:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received
