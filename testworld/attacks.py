"""Hostile and careless callers of a Pyro4 server, for the tests and the benchmark (loopback only).

Raw sockets bound to a chosen source address (127.0.0.2 plays a machine that is not a control
machine), Pyro4 messages built with Pyro4's own Message class, so that they are exactly what a Pyro4
client would send, or deliberately not. Every function is bounded in count and time."""

import os
import select
import socket
import struct
import time

import Pyro4.util
from Pyro4 import message

ATTACKER = '127.0.0.2'
SERPENT = Pyro4.util.get_serializer('serpent')
CONNECT_TIMEOUT = 5.0


def connect(host, port, source=ATTACKER, timeout=CONNECT_TIMEOUT):
    """A TCP connection to host:port from `source` (any port)."""
    return socket.create_connection((host, port), timeout=timeout, source_address=(source, 0))


def header(msg_type, data_size, serializer_id=SERPENT.serializer_id, flags=0, seq=0):
    """A Pyro4 message header (valid checksum) that declares `data_size` bytes of data."""
    msg = message.Message(msg_type, b'', serializer_id, flags, seq)
    msg.data_size = data_size
    return msg.to_bytes()[:message.Message.header_size]


def connect_message(object_id, serializer=SERPENT):
    data, _ = serializer.serializeData({'handshake': 'hello', 'object': object_id})
    return message.Message(message.MSG_CONNECT, data, serializer.serializer_id, message.FLAGS_META_ON_CONNECT,
                           0).to_bytes()


def invoke_message(object_id, method, args, seq=1, oneway=False):
    data, _ = SERPENT.serializeCall(object_id, method, tuple(args), {})
    flags = message.FLAGS_ONEWAY if oneway else 0
    return message.Message(message.MSG_INVOKE, data, SERPENT.serializer_id, flags, seq).to_bytes()


def receive_message(sock):
    """(header Message, data bytes) of the next message from `sock`."""
    head = _receive(sock, message.Message.header_size)
    msg = message.Message.from_header(head)
    _receive(sock, msg.annotations_size)
    return msg, _receive(sock, msg.data_size)


def _receive(sock, size):
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 65536))
        if not chunk:
            raise ConnectionError('closed by the server')
        chunks.append(chunk)
        left -= len(chunk)
    return b''.join(chunks)


def handshake(host, port, object_id, source=ATTACKER):
    """A connection past Pyro4's CONNECT handshake, ready for invoke messages."""
    sock = connect(host, port, source)
    sock.sendall(connect_message(object_id))
    reply, _ = receive_message(sock)
    if reply.type != message.MSG_CONNECTOK:
        sock.close()
        raise ConnectionError('handshake refused')
    return sock


def send_large(host, port, size, object_id=None, declared=None, source=ATTACKER, seconds=30.0):
    """Sends one message of `size` bytes of data (a serpent-looking list of ints), in the CONNECT
    handshake, or after it when `object_id` is given (an unknown one is fine: the body is where
    the cost was). `declared` overrides the size in the header (2 GiB with little data sent).
    Returns (bytes of data sent, seconds until the server closed or `seconds` passed)."""
    sock = handshake(host, port, object_id, source) if object_id else connect(host, port, source)
    start = time.monotonic()
    sent = 0
    try:
        msg_type = message.MSG_INVOKE if object_id else message.MSG_CONNECT
        sock.sendall(header(msg_type, declared if declared is not None else size, seq=1))
        chunk = b'[' + b'1234567,' * 8191 + b'1]'
        sock.settimeout(1.0)
        while sent < size and time.monotonic() - start < seconds:
            try:
                sent += sock.send(chunk[:size - sent])
            except socket.timeout:
                continue
    except OSError:
        pass  # refused: the server closed the connection
    finally:
        sock.close()
    return sent, time.monotonic() - start


def hold(host, port, count, partial=b'', source=ATTACKER):
    """`count` connections that send `partial` (nothing: idle; 10 bytes of a header: slow) and then
    nothing more. Connections the server refuses at once are not in the result."""
    held = []
    for _ in range(count):
        try:
            sock = connect(host, port, source)
            if partial:
                sock.sendall(partial)
            held.append(sock)
        except OSError:
            pass
    return held


def closed_by_server(sock):
    """Whether the server has closed `sock` (without waiting)."""
    sock.setblocking(False)
    try:
        return sock.recv(65536) == b''
    except BlockingIOError:
        return False
    except OSError:
        return True


def oneway_flood(host, port, object_id, method, args, count, source=ATTACKER, seconds=30.0):
    """`count` oneway calls of method(*args) pipelined on one connection (what a Pyro4 proxy does
    with oneway methods, only faster). Returns how many were sent before the server closed the
    connection or `seconds` passed."""
    return call_flood(host, port, object_id, method, args, count, source, seconds, oneway=True)


def call_flood(host, port, object_id, method, args, count, source=ATTACKER, seconds=30.0, oneway=False):
    """`count` calls of method(*args) pipelined on one connection; replies are read and thrown away
    (a reset would discard the calls still unread on the server's side), until the server closes the
    connection or `seconds` pass. Returns how many calls were sent."""
    sock = handshake(host, port, object_id, source)
    batch = b''.join(invoke_message(object_id, method, args, seq=i + 1, oneway=oneway) for i in range(count))
    sock.setblocking(False)
    view, sent, deadline = memoryview(batch), 0, time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock] if sent < len(batch) else [], [], 0.5)
            if writable:
                sent += sock.send(view[sent:])
                if sent == len(batch):
                    sock.shutdown(socket.SHUT_WR)  # all sent: the server reads to the end, then closes
            if readable and not sock.recv(65536):
                break
    except OSError:
        pass
    finally:
        sock.close()
    return sent * count // len(batch)


# --- observing the server process -------------------------------------------------------------------

def rss_kib(pid):
    return _status_field(pid, 'VmRSS')


def peak_rss_kib(pid):
    return _status_field(pid, 'VmHWM')


def threads(pid):
    return _status_field(pid, 'Threads')


def _status_field(pid, name):
    with open('/proc/{}/status'.format(pid)) as f:
        for line in f:
            if line.startswith(name + ':'):
                return int(line.split()[1])
    raise KeyError(name)


def open_files(pid):
    return len(os.listdir('/proc/{}/fd'.format(pid)))


def connections_to(pid, port):
    """How many TCP sockets of process `pid` are connected to `port` (any host)."""
    inodes = set()
    for fd in os.listdir('/proc/{}/fd'.format(pid)):
        try:
            target = os.readlink('/proc/{}/fd/{}'.format(pid, fd))
        except OSError:
            continue
        if target.startswith('socket:['):
            inodes.add(target[8:-1])
    count = 0
    for table in ('/proc/{}/net/tcp'.format(pid), '/proc/{}/net/tcp6'.format(pid)):
        try:
            with open(table) as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            remote_port = int(fields[2].rsplit(':', 1)[1], 16)
            if remote_port == port and fields[9] in inodes and fields[3] == '01':  # ESTABLISHED
                count += 1
    return count


def reset(sock):
    """Closes `sock` with a TCP reset (SO_LINGER 0) instead of a FIN: the server's getpeername() on it
    fails from then on."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    sock.close()


def call_and_reset(host, port, object_id, method, args, oneway=False, source=ATTACKER):
    """Handshakes, sends one call of method(*args) and resets the connection at once."""
    sock = handshake(host, port, object_id, source)
    try:
        sock.sendall(invoke_message(object_id, method, args, oneway=oneway))
    finally:
        reset(sock)
