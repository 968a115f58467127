"""The wire's per-source limits on IPv6 count a /64 as one source, through the real server, in a
network namespace this test makes itself (its loopback holds addresses of two /64s)."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from testworld.support import REPO

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('unshare'),
                                reason='needs root and unshare for a network namespace of its own')

ONE_HOST = ['2001:db8:1:2::{:x}'.format(n) for n in range(1, 5)]
OTHER_HOST = '2001:db8:1:3::1'

IN_NAMESPACE = textwrap.dedent('''
    import subprocess, sys, threading
    from rockit.camvirt.wire import server as wire
    from rockit.camvirt.wire import callers
    from rockit.camvirt.wire.refusals import RefusalLog
    from testworld import attacks
    from testworld.support import ListLog, free_port, wait_until
    import Pyro4

    ONE_HOST, OTHER_HOST = {one!r}, {other!r}
    subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)
    for address in ONE_HOST + [OTHER_HOST]:
        subprocess.run(['ip', '-6', 'addr', 'add', address + '/64', 'dev', 'lo', 'nodad'], check=True)

    @Pyro4.expose
    class Caller:
        def who(self):
            return callers.current()

    wire.configure_pyro()
    log = ListLog()
    port = free_port()
    daemon = wire.HardenedDaemon('::', port, RefusalLog(log), privileged=lambda a: False,
                                 limits={{'max_connections_per_source': 3}})
    daemon.register(Caller(), objectId='caller')
    threading.Thread(target=daemon.requestLoop, daemon=True).start()
    # One connection from each of the first host's four addresses: its /64 may hold three.
    held = [s for a in ONE_HOST for s in attacks.hold('::1', port, 1, source=a)]
    refused = wait_until(lambda: sum(attacks.closed_by_server(s) for s in held) == 1, 5)
    # Another /64 is another host; a command's caller is still its own address.
    sock = attacks.handshake('::1', port, 'caller', OTHER_HOST)
    sock.settimeout(5)
    sock.sendall(attacks.invoke_message('caller', 'who', ()))
    _, data = attacks.receive_message(sock)
    print('refused one of four:', refused)
    print('caller:', attacks.SERPENT.deserializeData(data))
    print(log.text())
    daemon.shutdown()
''')


def test_the_addresses_of_one_ipv6_slash_64_share_its_connections():
    script = IN_NAMESPACE.format(one=ONE_HOST, other=OTHER_HOST)
    result = subprocess.run(['unshare', '--net', sys.executable, '-c', script], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'refused one of four: True' in result.stdout, result.stdout
    assert 'caller: {}'.format(OTHER_HOST) in result.stdout, result.stdout
    assert 'refused connection from 2001:db8:1:2::/64: too many connections from this address' in result.stdout, \
        result.stdout
