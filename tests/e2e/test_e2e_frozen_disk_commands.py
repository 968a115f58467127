"""A state write stuck on a frozen disk delays neither a crash restart nor an opsd initialize by more
than a bounded wait per change (statefile.SAVE_WAIT): the state file's writer thread writes the latest
state once the disk answers, while the crash watch (on the dispatch thread) and the commands go on.
Same frozen-ext4-in-a-private-mount-namespace recipe (with a watchdog) as test_e2e_frozen_disk.py."""

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

FROZEN_SECONDS = 15
WATCHDOG_SECONDS = 45

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
    configure_pyro()
    start_event_loop()
    conn = libvirt.open(TEST_URI)
    world = World(conn, domains=2, memory_path=path, initialize_timeout=5,
                  extra_config={{'restart_crashed': True, 'restart_crashed_per_hour': 3}})
    first, second = world.domain_names
    found = {{}}
    try:
        assert world.call('initialize') == 0
        assert world.call('shutdown', [second], False) == 0
        subprocess.run(['fsfreeze', '--freeze', disk], check=True)
        import threading
        thaw = threading.Timer({frozen}, lambda: subprocess.run(['fsfreeze', '--unfreeze', disk]))
        thaw.start()
        try:
            world.domain(first).destroy()  # a crash: should be restarted within initialize_timeout or so
            found['crash seen'] = wait_until(lambda: world.hypervisor.state(first) == VMState.ShutOff, 5)
            found['crash restarted while frozen'] = wait_until(
                lambda: world.hypervisor.state(first) == VMState.Running, 8)
            began = time.monotonic()
            try:
                status = world.call('initialize', [second], timeout=30)
            except Exception as e:
                status = repr(e)
            found['opsd initialize status'] = status
            found['opsd initialize seconds'] = round(time.monotonic() - began, 1)
        finally:
            thaw.join()
            subprocess.run(['fsfreeze', '--unfreeze', disk])
        found['crash restarted once thawed'] = wait_until(
            lambda: world.hypervisor.state(first) == VMState.Running, 15)
    finally:
        world.close()
        subprocess.run(['umount', '-l', disk])
        os.killpg(watchdog.pid, signal.SIGKILL)
        shutil.rmtree(folder)
    print(world.log.text(), file=sys.stderr)
    print('found:', json.dumps(found, sort_keys=True))
''')


def test_a_stuck_state_write_delays_neither_a_crash_restart_nor_an_opsd_initialize():
    script = IN_NAMESPACE.format(repo=REPO, watchdog=WATCHDOG_SECONDS, frozen=FROZEN_SECONDS)
    result = subprocess.run(['unshare', '--mount', '--propagation', 'private', sys.executable, '-c', script],
                            cwd=REPO, capture_output=True, text=True, timeout=WATCHDOG_SECONDS + 30)
    if result.returncode == 77:
        pytest.skip(result.stdout.strip())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    found = json.loads(result.stdout.split('found:', 1)[1])
    assert found['crash restarted once thawed']
    assert found['crash restarted while frozen'], found
    # initialize_timeout is 5 s: its caller must have its answer within that (and a little), frozen disk or not.
    assert found['opsd initialize seconds'] < 5 + 2, found
