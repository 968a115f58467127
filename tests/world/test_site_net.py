"""The site world's network (testworld/sitenet.py): real namespaces, veths and bridges (root only),
a link that is cut and restored, and removal that ends the processes inside."""

import os
import secrets
import shutil
import subprocess
import sys
import time

import pytest

from testworld.site.net import SiteNetwork, namespace_pids, remove_namespaces, world_namespaces

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('ip'), reason='needs root and ip netns')

LISTENER = ('import socket,sys,time; s=socket.create_server(("198.18.0.1", 7000)); print("up", flush=True); '
            'time.sleep(60)')
CONNECT = ('import socket,sys; s=socket.socket(); s.settimeout(float(sys.argv[1])); '
           's.connect(("198.18.0.1", 7000)); print("connected")')


@pytest.fixture
def network():
    net = SiteNetwork('cvt' + secrets.token_hex(3), {'a': '198.18.0.1', 'b': '198.18.0.2'},
                      {'a': ('198.18.1.1', {'c': '198.18.1.2'})})
    try:
        net.build()
        yield net
    finally:
        remove_namespaces(net.prefix)


def in_ns(net, role, code, *args, timeout=10):
    return subprocess.run(['ip', 'netns', 'exec', net.ns(role), sys.executable, '-c', code] + list(args),
                          capture_output=True, text=True, timeout=timeout)


def test_hosts_meet_on_the_switch_until_a_cable_is_pulled(network):
    assert world_namespaces(network.prefix) == sorted(network.ns(r) for r in ('switch', 'a', 'b', 'c'))
    listener = subprocess.Popen(['ip', 'netns', 'exec', network.ns('a'), sys.executable, '-c', LISTENER],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == 'up'
        assert in_ns(network, 'b', CONNECT, '5').stdout.strip() == 'connected'
        network.set_site_link('a', up=False)
        cut = in_ns(network, 'b', CONNECT, '0.5')
        assert cut.returncode != 0 and 'timed out' in cut.stderr
        network.set_site_link('a', up=True)
        assert in_ns(network, 'b', CONNECT, '5').stdout.strip() == 'connected'
        # The camera VM is on A's camera bridge only: the site network is no route away.
        assert 'Network is unreachable' in in_ns(network, 'c', CONNECT, '1').stderr
    finally:
        listener.kill()
        listener.wait()


def test_removal_ends_the_processes_inside_and_leaves_no_namespace(network):
    sleeper = subprocess.Popen(['ip', 'netns', 'exec', network.ns('c'), 'sleep', '60'])
    deadline = time.monotonic() + 5
    while sleeper.pid not in namespace_pids(network.ns('c')) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sleeper.pid in namespace_pids(network.ns('c'))
    removed = remove_namespaces(network.prefix)
    assert len(removed) == 4
    assert sleeper.wait(5) == -9
    assert world_namespaces(network.prefix) == []


def test_loss_rules_go_into_the_camera_vms_namespace(network):
    network.add_loss('c', 1)
    rules = subprocess.run(['ip', 'netns', 'exec', network.ns('c'), 'nft', 'list', 'ruleset'], capture_output=True,
                           text=True, timeout=10).stdout
    assert 'iifname "eth0" numgen random mod 100 < 1 counter' in rules
    assert 'oifname "eth0" numgen random mod 100 < 1 counter' in rules
