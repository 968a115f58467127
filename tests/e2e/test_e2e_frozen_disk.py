"""A state file write that blocks for 20 s on a frozen filesystem (fsfreeze) costs camvirtd neither its
libvirt events nor its status: the camvirtd of the in-process tests, remembering on an ext4 image
mounted in a mount namespace this test makes itself, with a watchdog there that thaws it at the latest
after WATCHDOG_SECONDS, so that nothing stays frozen if the test dies."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from testworld.support import REPO

NEEDS = ('unshare', 'mount', 'mkfs.ext4', 'fsfreeze')
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in NEEDS),
    reason='needs root and {} for a frozen filesystem of its own'.format(', '.join(NEEDS)))]

FROZEN_SECONDS = 20
WATCHDOG_SECONDS = 60

IN_NAMESPACE = textwrap.dedent('''
    import json, os, shutil, signal, subprocess, sys, tempfile, time
    sys.path[:0] = [{repo!r}, os.path.join({repo!r}, 'tests')]
    import libvirt
    from conftest import World
    from rockit.camvirt.daemon.service import configure_pyro
    from rockit.camvirt.shared.constants import VMState
    from rockit.camvirt.virt.eventloop import start_event_loop
    from testworld.support import TEST_URI, wait_until

    folder = tempfile.mkdtemp(prefix='camvirt-frozen-')
    image, disk = os.path.join(folder, 'disk.img'), os.path.join(folder, 'disk')
    os.mkdir(disk)
    subprocess.run(['truncate', '-s', '16M', image], check=True)
    subprocess.run(['mkfs.ext4', '-q', image], check=True)
    mounted = subprocess.run(['mount', '-o', 'loop,noatime', image, disk], capture_output=True, text=True)
    if mounted.returncode:
        print('cannot mount a loop device here:', mounted.stderr.strip())
        sys.exit(77)
    watchdog = subprocess.Popen(['sh', '-c', 'sleep {watchdog}; fsfreeze --unfreeze {{}} 2>/dev/null'.format(disk)],
                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = os.path.join(disk, 'state.json')

    def remembered_stops():
        with open(path) as f:
            return sorted(json.load(f).get('stops', {{}}))

    configure_pyro()
    start_event_loop()
    conn = libvirt.open(TEST_URI)
    world = World(conn, domains=2, memory_path=path)
    first, second = world.domain_names
    found = {{}}

    def state_is(name, state):
        return wait_until(lambda: world.hypervisor.state(name) == state, 5)

    try:
        assert world.call('initialize') == 0
        subprocess.run(['fsfreeze', '--freeze', disk], check=True)
        thaw_at = time.monotonic() + {frozen}
        try:
            world.domain(first).destroy()  # an unexpected stop: the crash watch's write of it blocks
            found['stop followed'] = state_is(first, VMState.ShutOff)
            found['write blocked'] = remembered_stops() == []  # the file on disk is the one before
            found['status while frozen'] = world.call('report_status', timeout=5)['domains'][0]['unexpected_stop'] \\
                is not None
            found['history while frozen'] = len(world.call('report_history', timeout=5)) == 1
            while time.monotonic() < thaw_at:  # libvirt's events keep coming in all the while
                world.domain(second).destroy()
                found.setdefault('events while frozen', True)
                found['events while frozen'] &= state_is(second, VMState.ShutOff)
                world.domain(second).create()
                found['events while frozen'] &= state_is(second, VMState.Running)
            found['connected'] = world.hypervisor.connected
        finally:
            subprocess.run(['fsfreeze', '--unfreeze', disk])
        found['written once thawed'] = wait_until(lambda: first in remembered_stops(), 10)
    finally:
        world.close()
        subprocess.run(['umount', '-l', disk])
        os.killpg(watchdog.pid, signal.SIGKILL)  # its shell and its sleep
        shutil.rmtree(folder)
    print(world.log.text(), file=sys.stderr)
    print('found:', json.dumps(found, sort_keys=True))
''')


def test_a_state_write_stuck_on_a_frozen_disk_costs_neither_libvirt_events_nor_status():
    script = IN_NAMESPACE.format(repo=REPO, watchdog=WATCHDOG_SECONDS, frozen=FROZEN_SECONDS)
    result = subprocess.run(['unshare', '--mount', '--propagation', 'private', sys.executable, '-c', script],
                            cwd=REPO, capture_output=True, text=True, timeout=WATCHDOG_SECONDS + 30)
    if result.returncode == 77:
        pytest.skip(result.stdout.strip())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    found = json.loads(result.stdout.split('found:', 1)[1])
    assert found == {'stop followed': True, 'write blocked': True, 'status while frozen': True,
                     'history while frozen': True, 'events while frozen': True, 'connected': True,
                     'written once thawed': True}
