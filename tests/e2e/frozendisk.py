"""A filesystem the test freezes under camvirtd: an ext4 image loop-mounted in a mount namespace of the
test's own and frozen with fsfreeze, with a watchdog there that thaws it after `watchdog` seconds should
the test die (a process writing to a frozen filesystem cannot be killed until it thaws).

A test gives the body of a script run in that namespace, where `disk` is the mounted folder, `path` a
state file on it, `freeze()` and `thaw()` act on it, `World` is the in-process test world and `found`
a dict the body fills; run_frozen() returns `found`. The body closes what it opened."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from testworld.support import REPO

NEEDS = ('unshare', 'mount', 'mkfs.ext4', 'fsfreeze')
needs_frozen_disk = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in NEEDS),
    reason='needs root and {} for a frozen filesystem of its own'.format(', '.join(NEEDS)))

PROLOGUE = '''
import json, os, shutil, signal, subprocess, sys, tempfile, threading, time
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
found = {{}}


def freeze():
    subprocess.run(['fsfreeze', '--freeze', disk], check=True)


def thaw():
    subprocess.run(['fsfreeze', '--unfreeze', disk], stderr=subprocess.DEVNULL)


configure_pyro()
start_event_loop()
conn = libvirt.open(TEST_URI)
try:
'''

EPILOGUE = '''
finally:
    thaw()
    subprocess.run(['umount', '-l', disk])
    os.killpg(watchdog.pid, signal.SIGKILL)  # its shell and its sleep
    shutil.rmtree(folder)
print('found:', json.dumps(found, sort_keys=True))
'''


def run_frozen(body, watchdog):
    """Runs `body` in a mount namespace of its own beside a disk it may freeze; returns its `found`."""
    script = PROLOGUE.format(repo=REPO, watchdog=watchdog) + textwrap.indent(textwrap.dedent(body), '    ') + \
        EPILOGUE
    result = subprocess.run(['unshare', '--mount', '--propagation', 'private', sys.executable, '-c', script],
                            cwd=REPO, capture_output=True, text=True, timeout=watchdog + 30)
    if result.returncode == 77:
        pytest.skip(result.stdout.strip())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return json.loads(result.stdout.split('found:', 1)[1])
