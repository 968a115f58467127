"""A site world for end-to-end tests: ./testworld/camvirt-site in a temp folder, and the site's callers
(opsd from the TCS host, the dashboard poller, `camvirt status --all`) run in the hosts' namespaces.
virsh (over each DAS host's libvirtd socket) and `ip netns` are the independent observers."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from .e2e_world import CAMVIRT, REPO, Process, process_alive

SITE = os.path.join(REPO, 'testworld', 'camvirt-site')
START_TIMEOUT = 90
STOP_TIMEOUT = 30
CALL_TIMEOUT = 60


def root_with_netns():
    return os.geteuid() == 0 and shutil.which('ip') is not None


needs_netns = pytest.mark.skipif(not root_with_netns(), reason='the site world needs root and ip netns')


def netns_names(prefix):
    result = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True, timeout=10, check=True)
    return sorted(line.split()[0] for line in result.stdout.splitlines()
                  if line.strip() and line.startswith(prefix + '-'))


def netns_pids(names):
    pids = set()
    for ns in names:
        result = subprocess.run(['ip', 'netns', 'pids', ns], capture_output=True, text=True, timeout=10)
        pids.update(int(p) for p in result.stdout.split())
    return pids


class SiteRun:
    """One camvirt-site process on a folder (a fresh temp one unless given)."""

    def __init__(self, folder=None):
        self.parent = tempfile.mkdtemp(prefix='camvirt-site-')
        # A folder the world makes itself (and so removes), unless the test gives one.
        self.folder = folder or os.path.join(self.parent, 'site')
        self.process = None
        self.site = None
        self.prefix = None

    def start(self, *options, boot_delay=0.3, expect_ready=True):
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        self.process = Process([SITE, '--dir', self.folder, '--boot-delay', str(boot_delay)] + list(options), env)
        found = self.process.out.wait_for(r'^camvirt-site: world cvs[0-9a-f]+ in ', START_TIMEOUT)
        if found:
            self.prefix = re.search(r'world (cvs[0-9a-f]+) in', found).group(1)
        if not expect_ready:
            return self
        ready = self.process.out.wait_for(r'^site ready: ', START_TIMEOUT)
        assert ready, 'the site world did not get ready: ' + self.process.describe()
        with open(os.path.join(self.folder, 'site.json')) as f:
            self.site = json.load(f)
        assert self.site['prefix'] == self.prefix
        return self

    def ns(self, role):
        return self.site['hosts'][role]['ns'] if role in self.site['hosts'] else self.site['cameras'][role]['ns']

    # --- callers, each from its host ----------------------------------------------------------------

    def run_in(self, role, *command, timeout=CALL_TIMEOUT, env=None):
        return subprocess.run(['ip', 'netns', 'exec', self.ns(role)] + list(command), capture_output=True,
                              text=True, timeout=timeout, cwd=REPO, env=env, stdin=subprocess.DEVNULL)

    def callers(self, role, *args, timeout=CALL_TIMEOUT):
        result = self.run_in(role, sys.executable, '-m', 'testworld.site.callers', '--site',
                             os.path.join(self.folder, 'site.json'), *args, timeout=timeout)
        assert result.returncode == 0, result.stdout + result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    def opsd(self, method, from_host='tcs', timeout=300, das=()):
        """{das: opsd's record} for initialize()/shutdown() called on each DAS host at once."""
        args = ['opsd', method, '--timeout', str(timeout)] + [a for d in das for a in ('--das', d)]
        return {r['das']: r for r in self.callers(from_host, *args, timeout=timeout + CALL_TIMEOUT)}

    def opsd_results(self, method, **kwargs):
        return {das: r.get('result', r.get('error')) for das, r in self.opsd(method, **kwargs).items()}

    def start_opsd(self, method, timeout, from_host='tcs'):
        """opsd as a process of its own, for calls a test acts on while they run."""
        return Process(['ip', 'netns', 'exec', self.ns(from_host), sys.executable, '-m', 'testworld.site.callers',
                        '--site', os.path.join(self.folder, 'site.json'), 'opsd', method, '--timeout',
                        str(timeout)], dict(os.environ))

    def dashboard(self, rounds, interval=0.5):
        return self.callers('dashboard', 'dashboard', '--rounds', str(rounds), '--interval', str(interval))

    def fleet(self, from_host='tcs'):
        """`camvirt status --all --json` from a host, over the site's configs."""
        env = dict(os.environ, CAMVIRTD_REGISTRY=self.site['registry'], CAMVIRTD_CONFIG_PATH=':'.join(
            c['config'] for c in self.site['camvirtd'].values()))
        result = self.run_in(from_host, CAMVIRT, 'status', '--all', '--json', env=env)
        rows = json.loads(result.stdout)
        # 0 when every host could be shown, 1 when one could not (its row says why).
        shown = all(row['camera'] for row in rows)
        assert result.returncode == (0 if shown else 1), result.stdout + result.stderr
        return rows

    def camvirtd_says(self, das, pattern, seconds=10):
        return self.process.out.wait_for(r'^{} camvirtd: .*{}'.format(das, pattern), seconds)

    # --- observers and faults -----------------------------------------------------------------------

    def virsh(self, das, *args):
        uri = 'test+unix:///default?socket={}/libvirt-sock'.format(self.site['camvirtd'][das]['libvirt_folder'])
        result = subprocess.run(['virsh', '-c', uri] + list(args), capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, 'virsh {}: {}'.format(' '.join(args), result.stderr)
        return result.stdout.strip()

    def domstates(self, das):
        return {name: self.virsh(das, 'domstate', name) for name in self.site['camvirtd'][das]['cameras']}

    def set_link(self, das, up):
        """Cuts or restores a host's cable to the site switch."""
        subprocess.run(['ip', '-n', self.site['prefix'] + '-switch', 'link', 'set', 'dev', das, 'up' if up else 'down'],
                       check=True, timeout=10)

    def namespaces(self):
        return netns_names(self.prefix)

    # --- the end ------------------------------------------------------------------------------------

    def stop(self, signum=signal.SIGTERM):
        """Signals the world and returns its exit status (None if it did not stop in time)."""
        self.process.signal(signum)
        return self.process.wait(STOP_TIMEOUT)

    def close(self):
        """Whatever the test did: the world stops, and anything it left goes (camvirt-site --clean)."""
        if self.process is not None:
            self.process.stop()
        if os.path.isdir(self.folder):
            subprocess.run([SITE, '--dir', self.folder, '--clean'], capture_output=True, timeout=STOP_TIMEOUT)
        if self.prefix:  # the last resort, should even --clean have failed
            names = netns_names(self.prefix)
            for pid in netns_pids(names):
                if process_alive(pid):
                    os.kill(pid, signal.SIGKILL)
            for ns in names:
                subprocess.run(['ip', 'netns', 'del', ns], capture_output=True, timeout=10)
        shutil.rmtree(self.parent, ignore_errors=True)


def site_runs():
    """For a test module's make_site fixture (`yield from site_runs()`): make_site(folder=None) -> a
    SiteRun that is stopped and cleaned up when the test ends."""
    runs = []

    def make(folder=None):
        run = SiteRun(folder)
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.close()
        if run.process is not None:
            print(run.process.describe())  # shown by pytest only when the test failed
