"""A camera-VM world for end-to-end tests: ./camvirt-sandbox, ./camvirtd and ./camvirt as separate
processes on a generated config and registry (temp folder, ephemeral ports), with virsh as an
independent observer and plain Pyro4 proxies as the dashboard and the operations daemon."""

import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import Pyro4
import Pyro4.errors

from testworld.support import free_port, wait_until  # noqa: F401 (wait_until: for the e2e tests)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANDBOX = os.path.join(REPO, 'testworld', 'camvirt-sandbox')
CAMVIRTD = os.path.join(REPO, 'camvirtd')
CAMVIRT = os.path.join(REPO, 'camvirt')

START_TIMEOUT = 15
# A QEMU sandbox's libvirtd probes QEMU first (a few seconds, longer on a busy machine).
QEMU_START_TIMEOUT = 90
STOP_TIMEOUT = 10
COMMAND_TIMEOUT = 40
OFFLINE = {'state': 0, 'vm_active': False}


def process_alive(pid):
    try:
        with open('/proc/{}/stat'.format(pid)) as f:
            return f.read().split(') ')[-1][0] != 'Z'  # a zombie has exited
    except OSError:
        return False


class Lines:
    """Every line a stream gives, collected on a thread; waits for a line without polling."""

    def __init__(self, stream):
        self._lines = []
        self._cond = threading.Condition()
        self._closed = False
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for raw in stream:
            with self._cond:
                self._lines.append(raw.decode(errors='replace').rstrip('\n'))
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def text(self):
        with self._cond:
            return '\n'.join(self._lines)

    def wait_for(self, pattern, seconds):
        """The first line matching the regex, or None when none came within `seconds` (or the stream
        ended)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + seconds

        def found():
            return next((line for line in self._lines if regex.search(line)), None)

        with self._cond:
            self._cond.wait_for(lambda: found() is not None or self._closed,
                                timeout=max(0, deadline - time.monotonic()))
            return found()

    def wait_closed(self, seconds):
        with self._cond:
            return self._cond.wait_for(lambda: self._closed, timeout=seconds)


class Process:
    """A process in a session of its own, its stdout and stderr collected."""

    def __init__(self, command, env):
        self.command = command
        self.popen = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, start_new_session=True, cwd=REPO)
        self.out = Lines(self.popen.stdout)
        self.err = Lines(self.popen.stderr)

    @property
    def pid(self):
        return self.popen.pid

    def signal(self, signum):
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signum)

    def wait(self, seconds):
        """Its exit status, or None when it is still running after `seconds`."""
        try:
            return self.popen.wait(seconds)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """SIGTERM, then SIGKILL to its whole process group; returns the exit status."""
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            if self.wait(STOP_TIMEOUT) is None:
                self._kill_group()
        self._kill_group()  # whatever it left behind in its group
        self.popen.wait()
        self.out.wait_closed(5)
        self.err.wait_closed(5)
        return self.popen.returncode

    def _kill_group(self):
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def describe(self):
        return '{} (exit {}):\n--- stdout\n{}\n--- stderr\n{}'.format(
            ' '.join(self.command), self.popen.poll(), self.out.text(), self.err.text())


class World:
    """A config and registry of its own in a temp folder, and the processes of one test."""

    def __init__(self, cameras=None, control_machines=('LocalHost',), initialize_timeout=4,
                 shutdown_timeout=4, camera_timeout=1.0, extra_config=None, qemu=False):
        """cameras: {domain: [camera id]}, by default cam1 and cam2 with a camera each; qemu: real
        QEMU guests (camvirt-sandbox --qemu) instead of simulated ones. camera_timeout is camvirtd's
        default (1 s): with the sandbox, camvirtd, libvirtd and the client sharing 2 busy cores, a
        camd's reply has been seen to take over 0.5 s."""
        cameras = cameras or {'cam1': ['cam1'], 'cam2': ['cam2']}
        self.qemu = qemu
        self.folder = tempfile.mkdtemp(prefix='camvirt-e2e-')
        self.uri = '{}?socket={}/libvirt-sock'.format(
            'qemu+unix:///system' if qemu else 'test+unix:///default', self.folder)
        tag = uuid.uuid4().hex[:8]
        self.daemons = {'e2e_camvirt': self._address('camvirt_' + tag),
                        'e2e_log': self._address('log_' + tag)}  # nothing listens: a log daemon that is down
        domains = {}
        for domain, ids in cameras.items():
            domains[domain] = {}
            for camera_id in ids:
                self.daemons['e2e_camd_' + camera_id] = self._address('camd_{}_{}'.format(camera_id, tag))
                domains[domain][camera_id] = 'e2e_camd_' + camera_id
        self.domains = list(domains)
        self.cameras = [c for ids in cameras.values() for c in ids]
        self.config = {
            'daemon': 'e2e_camvirt', 'log_name': 'camvirtd@e2e', 'control_machines': list(control_machines),
            'initialize_timeout': initialize_timeout, 'shutdown_timeout': shutdown_timeout,
            'libvirt_uri': self.uri, 'log_daemon': 'e2e_log', 'camera_timeout': camera_timeout,
            'shutdown_repeat_interval': 1, 'domains': domains,
        }
        self.config.update(extra_config or {})
        self.registry_path = self.write('registry.json', {
            'daemons': self.daemons, 'machines': {'LocalHost': '127.0.0.1', 'Elsewhere': '10.255.255.1'}})
        self.config_path = self.write('camvirtd.json', self.config)
        # camvirtd's state file (camvirtd.json there), kept across its restarts within the test.
        self.state_dir = os.path.join(self.folder, 'state')
        self.state_path = os.path.join(self.state_dir, 'camvirtd.json')
        self.env = dict(os.environ, CAMVIRTD_REGISTRY=self.registry_path, CAMVIRTD_CONFIG_PATH=self.config_path)
        self.sandbox = None
        self.camvirtd = None
        self.libvirtd_pids = set()
        self._processes = []

    @staticmethod
    def _address(object_id):
        return {'object_id': object_id, 'host': '127.0.0.1', 'port': free_port()}

    def write(self, name, data):
        path = os.path.join(self.folder, name)
        with open(path, 'w') as f:
            f.write(data if isinstance(data, str) else json.dumps(data))
        return path

    def pyro_uri(self, daemon):
        address = self.daemons[daemon]
        return 'PYRO:{}@127.0.0.1:{}'.format(address['object_id'], address['port'])

    # --- processes --------------------------------------------------------------------------------

    def processes(self):
        return list(self._processes)

    def spawn(self, *command):
        process = Process(list(command), self.env)
        self._processes.append(process)
        return process

    def start_sandbox(self, *options, boot_delay=0.3):
        """Runs ./camvirt-sandbox on the world's config and waits for its ready line."""
        kind = ('--qemu',) if self.qemu else ('--boot-delay', str(boot_delay))
        self.sandbox = self.spawn(SANDBOX, self.config_path, *kind, *options)
        ready = self.sandbox.out.wait_for(r'^sandbox ready: ', QEMU_START_TIMEOUT if self.qemu else START_TIMEOUT)
        assert ready, 'the sandbox did not get ready: ' + self.sandbox.describe()
        assert '--dir' in options or self.uri in ready
        self.libvirtd_pids.add(int(re.search(r'\(libvirtd pid (\d+)\)$', ready).group(1)))
        return ready

    def start_camvirtd(self):
        """Runs ./camvirtd and waits until it serves and has read every domain's state from libvirt."""
        self.camvirtd = self.spawn(CAMVIRTD, self.config_path, '--state-dir', self.state_dir)

        def settled():
            status = self.report_status()
            return status and status['libvirt_connected'] and \
                all(d['state'] not in ('unknown', 'missing') for d in status['domains'])

        assert wait_until(settled, START_TIMEOUT), 'camvirtd did not settle: ' + self.camvirtd.describe()

    def start(self, *sandbox_options, boot_delay=0.3):
        self.start_sandbox(*sandbox_options, boot_delay=boot_delay)
        self.start_camvirtd()
        return self

    def camvirt(self, *args, env=None):
        """Runs ./camvirt; returns the CompletedProcess (text)."""
        return subprocess.run([CAMVIRT] + list(args), env=env or self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT, cwd=REPO)

    def status(self):
        """`camvirt status --json`, parsed (exit 1, something needs attention, is a state like any other here)."""
        result = self.camvirt('status', '--json')
        assert result.returncode in (0, 1), result.stdout + result.stderr
        return json.loads(result.stdout)

    def libvirtd_pid(self):
        with open(os.path.join(self.folder, 'libvirtd.pid')) as f:
            return int(f.read().strip())

    # --- observers --------------------------------------------------------------------------------

    def virsh(self, *args):
        result = subprocess.run(['virsh', '-c', self.uri] + list(args), capture_output=True, text=True,
                                timeout=COMMAND_TIMEOUT)
        assert result.returncode == 0, 'virsh {}: {}'.format(' '.join(args), result.stderr)
        return result.stdout.strip()

    def domstate(self, name):
        return self.virsh('domstate', name)

    def proxy(self, timeout=5):
        """A plain Pyro4 proxy to camvirtd, as the dashboard and opsd make them."""
        proxy = Pyro4.Proxy(self.pyro_uri('e2e_camvirt'))
        proxy._pyroTimeout = timeout
        return proxy

    def report_status(self):
        """camvirtd's report_status() over Pyro4, or None while it does not answer."""
        try:
            with self.proxy() as proxy:
                return proxy.report_status()
        except Pyro4.errors.CommunicationError:
            return None

    # --- cleanup ----------------------------------------------------------------------------------

    def close(self):
        try:
            self.libvirtd_pids.add(self.libvirtd_pid())
        except (OSError, ValueError):
            pass
        for process in reversed(self._processes):
            process.stop()
        # The sandbox stops its libvirtd; one that outlived it (the sandbox was killed, or libvirtd
        # was SIGSTOPped) is ours to end.
        for pid in self.libvirtd_pids:
            if process_alive(pid) and self.folder in _cmdline(pid):
                os.kill(pid, signal.SIGKILL)
        # Guests the sandbox did not power off (a test failed midway, or the sandbox was killed).
        for pid in qemu_pids(self.folder):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)

    def qemu_pid(self, domain):
        """The pid of a running guest's QEMU process, from libvirt's own record of it."""
        with open(os.path.join(self.folder, 'state', 'run', 'libvirt', 'qemu', domain + '.pid')) as f:
            return int(f.read().strip())


def qemu_pids(folder):
    """QEMU processes of the guests of the sandbox in `folder` (named in the guest's kernel arguments)."""
    mark = re.compile(r'\bcam_sandbox={}(\s|\x00|$)'.format(re.escape(folder)))
    commands = {int(entry): _cmdline(int(entry)) for entry in os.listdir('/proc') if entry.isdigit()}
    return [pid for pid, command in commands.items()
            if command.startswith('/usr/bin/qemu-system') and mark.search(command) and process_alive(pid)]


def _cmdline(pid):
    try:
        with open('/proc/{}/cmdline'.format(pid), 'rb') as f:
            return f.read().decode(errors='replace')
    except OSError:
        return ''


def domain_states(status):
    return {d['name']: d['state'] for d in status['domains']}


def camera_labels(status):
    return {c['id']: c['label'] for d in status['domains'] for c in d['cameras']}


def since(status, name):
    entry = next(d for d in status['domains'] if d['name'] == name)
    return datetime.datetime.fromisoformat(entry['since'])


def diagnose(world, camera_id):
    """What camd and camvirtd say of a camera now, for a failure message."""
    found = []
    for what, call in (('camd directly', lambda: _direct(world, camera_id)),
                       ('camvirtd report_camera_status', lambda: _through(world, camera_id)),
                       ('camvirt status again', lambda: camera_labels(world.status()))):
        started = time.monotonic()
        try:
            found.append('{}: {!r}'.format(what, call()))
        except Exception as e:  # noqa: BLE001 - any failure is what we want to see
            found.append('{}: {!r}'.format(what, e))
        found[-1] += ' ({:.2f} s)'.format(time.monotonic() - started)
    return '; '.join(found)


def _direct(world, camera_id):
    with Pyro4.Proxy(world.pyro_uri('e2e_camd_' + camera_id)) as camd:
        camd._pyroTimeout = 5
        return camd.report_status()


def _through(world, camera_id):
    with world.proxy() as proxy:
        return proxy.report_camera_status(camera_id)
