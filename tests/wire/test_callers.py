"""The caller of a request is the source the server handed over, and only while it serves it."""

import threading

from rockit.camvirt.wire import callers


def test_the_caller_is_known_only_while_its_request_is_served():
    assert callers.current() is callers.UNKNOWN
    with callers.serving('127.0.0.2'):
        assert callers.current() == '127.0.0.2'
        seen = []
        other = threading.Thread(target=lambda: seen.append(callers.current()))
        other.start()
        other.join(timeout=5)
        assert seen == [callers.UNKNOWN]  # another thread serves no request
    assert callers.current() is callers.UNKNOWN


def test_callers_are_described_for_the_log():
    assert callers.describe(callers.CAMVIRTD_ITSELF) == 'camvirtd itself'
    assert callers.describe(callers.UNKNOWN) == 'an unknown caller'
    assert callers.describe('10.2.6.160') == '10.2.6.160'
