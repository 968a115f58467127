"""Who asks for a command: the source address the wire server accepted the request's connection from,
handed to the request by the server (wire.HardenedServer serves each message inside serving()); no
path asks the socket again, which a caller that reset its connection makes fail. camvirtd's own
commands (crash restarts) carry CAMVIRTD_ITSELF, an object no network path can produce: a network
caller is always a string."""

import contextlib
import threading


class _Itself:
    def __repr__(self):
        return 'camvirtd itself'


CAMVIRTD_ITSELF = _Itself()
UNKNOWN = None  # a call served outside the wire server: refused as a command, never trusted

_serving = threading.local()


@contextlib.contextmanager
def serving(source):
    """Marks this thread as serving a request from `source` (the address the server accepted)."""
    _serving.source = source
    try:
        yield
    finally:
        _serving.source = UNKNOWN


def current():
    """The source address of the request this thread serves; UNKNOWN when it serves none."""
    return getattr(_serving, 'source', UNKNOWN)


def describe(caller):
    if caller is CAMVIRTD_ITSELF:
        return 'camvirtd itself'
    return 'an unknown caller' if caller is UNKNOWN else caller
