"""`make run`: the sandbox and camvirtd on one config, in the foreground. camvirtd starts once the
sandbox says it is ready, so that its first look at libvirt finds the domains. Ctrl-C stops both; so
does either one ending.

    python -m testworld.run [--qemu] CONFIG
"""

import argparse
import os
import signal
import subprocess
import sys
import threading

from .sandbox import LOCAL_REGISTRY
from .support import REPO

READY_PREFIX = 'sandbox ready:'


class Run:
    """The two processes and the event that ends them: either one ending, Ctrl-C or SIGTERM."""

    def __init__(self):
        self.processes = []
        self.ended = threading.Event()

    def start(self, command, **kwargs):
        process = subprocess.Popen(command, **kwargs)
        self.processes.append(process)
        threading.Thread(target=lambda: (process.wait(), self.ended.set()), daemon=True).start()
        return process

    def stop(self, *_signal):
        """Ends both, camvirtd first so that it does not see libvirtd go (on a terminal, Ctrl-C
        reached both already)."""
        self.ended.set()
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()

    def status(self):
        return max(abs(process.wait()) for process in self.processes)


def start_sandbox(run, options, config):
    """The sandbox process once it is ready, or None when it ended before (its lines are shown)."""
    sandbox = run.start([os.path.join(REPO, 'testworld', 'camvirt-sandbox')] + options + [config],
                        stdout=subprocess.PIPE, text=True)
    for line in sandbox.stdout:
        print(line, end='', flush=True)
        if line.startswith(READY_PREFIX):
            # Its later lines, passed on until it closes its output.
            threading.Thread(target=pass_on, args=(sandbox.stdout,), daemon=True).start()
            return sandbox
    return None


def pass_on(stream):
    for line in stream:
        print(line, end='', flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m testworld.run')
    parser.add_argument('--qemu', action='store_true', help='real QEMU guests (camvirt-sandbox --qemu)')
    parser.add_argument('--state-dir', default='build/run-state', help="camvirtd's state folder")
    parser.add_argument('config')
    args = parser.parse_args(argv)
    os.environ.setdefault('CAMVIRTD_REGISTRY', LOCAL_REGISTRY)
    run = Run()
    signal.signal(signal.SIGINT, run.stop)
    signal.signal(signal.SIGTERM, run.stop)
    if start_sandbox(run, ['--qemu'] if args.qemu else [], args.config) is None or run.ended.is_set():
        run.stop()
        return run.status() or 1
    run.start([os.path.join(REPO, 'camvirtd'), args.config, '--state-dir', args.state_dir])
    run.ended.wait()
    run.stop()
    return run.status()


if __name__ == '__main__':
    sys.exit(main())
