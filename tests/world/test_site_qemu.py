"""The site world's QEMU wrapper (testworld/siteqemu.py): a guest's QEMU enters the namespace of the
VM its -name names; libvirt's capability probe (no -name) and unknown guests run QEMU as it is."""

import os
import subprocess

from testworld.site.qemu import WRAPPER_SCRIPT


def write(path, text):
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, 0o755)


def run_wrapper(tmp_path, *args):
    """The wrapper's output with stand-ins: `nsenter` and QEMU each print what they were given."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    write(str(bin_dir / 'nsenter'), '#!/bin/sh\necho nsenter "$@"\n')
    qemu = str(tmp_path / 'qemu')
    write(qemu, '#!/bin/sh\necho qemu "$@"\n')
    netns = tmp_path / 'netns'
    netns.mkdir(exist_ok=True)
    (netns / 'cam1').write_text('')
    wrapper = str(tmp_path / 'wrapper')
    write(wrapper, WRAPPER_SCRIPT.format(netns=str(netns), qemu=qemu))
    env = dict(os.environ, PATH='{}:{}'.format(bin_dir, os.environ['PATH']))
    return subprocess.run([wrapper] + list(args), env=env, capture_output=True, text=True, timeout=10,
                          check=True).stdout.strip(), qemu, str(netns)


def test_a_guests_qemu_runs_in_its_vms_namespace(tmp_path):
    out, qemu, netns = run_wrapper(tmp_path, '-name', 'guest=cam1,debug-threads=on', '-S')
    assert out == 'nsenter --net={}/cam1 {} -name guest=cam1,debug-threads=on -S'.format(netns, qemu)


def test_the_capability_probe_and_unknown_guests_run_qemu_as_it_is(tmp_path):
    out, qemu, _ = run_wrapper(tmp_path, '-S', '-no-user-config', '-machine', 'none')
    assert out == 'qemu -S -no-user-config -machine none'
    out, _, _ = run_wrapper(tmp_path, '-name', 'guest=cam9,debug-threads=on')
    assert out == 'qemu -name guest=cam9,debug-threads=on'
