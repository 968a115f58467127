"""A libvirtd of the sandbox's own: its sockets, pid file and config in one folder, nothing elsewhere.

Run as root, libvirtd is in system mode and would write under /run/libvirt (and, with its hypervisor
drivers, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt, /etc/libvirt). So it runs:
- in a private mount namespace (`unshare --mount`) with an empty tmpfs over /run and over those
  folders: whatever it writes there vanishes with it;
- with LIBVIRT_DRIVER_DIR pointing at an empty folder, so that it loads no hypervisor driver modules
  (QEMU's would probe /dev/kvm, which hangs on some hosts): the test driver, built into libvirt itself,
  is all the sandbox uses;
- in a session of its own, so that a Ctrl-C on the terminal reaches the sandbox and not libvirtd
  (the sandbox decides when it stops), and with a parent-death signal, so that it goes when the
  sandbox is killed outright.
"""

import collections
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import libvirt

SOCKET_NAME = 'libvirt-sock'
SOCKET_NAMES = (SOCKET_NAME, 'libvirt-sock-ro', 'libvirt-admin-sock')
PID_FILE = 'libvirtd.pid'
CONF_FILE = 'libvirtd.conf'
NO_DRIVERS_DIR = 'no-drivers'
# Folders libvirtd may write to, each hidden behind a tmpfs in its mount namespace when it exists.
HIDDEN_FOLDERS = ('/run', '/etc/libvirt', '/var/lib/libvirt', '/var/cache/libvirt', '/var/log/libvirt')
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
# How often to try connecting while libvirtd starts (a refused connection costs microseconds).
CONNECT_RETRY_INTERVAL = 0.02
# sun_path holds 108 bytes, including the final NUL.
MAX_SOCKET_PATH = 107

CONF_TEMPLATE = '''# Written by camvirt-sandbox; removed when it stops.
unix_sock_dir = "{folder}"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
listen_tcp = 0
listen_tls = 0
log_outputs = "4:stderr"
'''

# Run by `unshare` in the new mount namespace, then replaced by libvirtd ("$@").
NAMESPACE_SCRIPT = '''set -e
for folder in {folders}; do
  if [ -d "$folder" ]; then mount -t tmpfs -o mode=0755 camvirt-sandbox "$folder"; fi
done
exec "$@"
'''.format(folders=' '.join(HIDDEN_FOLDERS))


class LibvirtdError(Exception):
    """libvirtd could not be started; the message says why, in one line."""


def sandbox_uri(folder, qemu=False):
    """The URI of a sandbox libvirtd in `folder`: its test driver, or (qemu) its QEMU driver."""
    driver = 'qemu+unix:///system' if qemu else 'test+unix:///default'
    return '{}?socket={}'.format(driver, os.path.join(folder, SOCKET_NAME))


def folder_problems(folder):
    """Why `folder` cannot hold the sandbox's sockets, or []."""
    if not os.path.isabs(folder):
        return ['{}: the sandbox folder must be an absolute path'.format(folder)]
    for hidden in HIDDEN_FOLDERS:
        if folder == hidden or folder.startswith(hidden + '/'):
            return ['{}: the sandbox folder cannot be under {}, which its libvirtd gets a private copy of'
                    .format(folder, hidden)]
    longest = os.path.join(folder, max(SOCKET_NAMES, key=len))
    if len(longest.encode()) > MAX_SOCKET_PATH:
        return ['{}: the folder path is too long for a unix socket ({} bytes at most for {})'.format(
            folder, MAX_SOCKET_PATH, longest)]
    return []


def socket_in_use(path):
    """True when something accepts connections on the unix socket at `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


class PrivateLibvirtd:
    """One libvirtd process at a time in `folder`; start() may be called again after it died."""

    start_timeout = START_TIMEOUT

    def __init__(self, folder):
        self.folder = folder
        self.uri = sandbox_uri(folder)
        self.pid_file = os.path.join(folder, PID_FILE)
        self._conf = os.path.join(folder, CONF_FILE)
        self._no_drivers = os.path.join(folder, NO_DRIVERS_DIR)
        self._lock = threading.Lock()
        self._process = None
        self._stopping = False
        self._stderr = collections.deque(maxlen=20)
        self._stderr_reader = None

    @property
    def pid(self):
        process = self._process
        return process.pid if process else None

    def start(self):
        """Starts libvirtd and returns a libvirt connection to it once it answers; LibvirtdError."""
        os.makedirs(self._no_drivers, exist_ok=True)
        with open(self._conf, 'w') as f:
            f.write(CONF_TEMPLATE.format(folder=self.folder))
        with self._lock:
            if self._stopping:
                raise LibvirtdError('the sandbox is stopping')
            self._process = self._spawn()
        self._stderr.clear()  # the last run's words
        self._stderr_reader = threading.Thread(target=self._read_stderr, args=(self._process,), daemon=True,
                                               name='libvirtd-stderr')
        self._stderr_reader.start()
        return self._connect(self._process)

    def _spawn_command(self):
        """(command, environment) that starts libvirtd in its namespace."""
        command = ['setpriv', '--pdeathsig', 'TERM',
                   'unshare', '--mount', '--propagation', 'private',
                   'sh', '-c', NAMESPACE_SCRIPT, 'sh',
                   'libvirtd', '-f', self._conf, '-p', self.pid_file]
        return command, dict(os.environ, LIBVIRT_DRIVER_DIR=self._no_drivers)

    def _spawn(self):
        command, env = self._spawn_command()
        try:
            return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            raise LibvirtdError('cannot run {}: {}'.format(e.filename or command[0], e.strerror))

    def _read_stderr(self, process):
        # Kept, not shown: libvirtd logs an error for every client that goes away, which is normal
        # here. The last lines explain a libvirtd that would not start or died.
        for line in process.stderr:
            self._stderr.append(line.decode(errors='replace').rstrip())

    def last_words(self):
        """libvirtd's last lines on stderr, once it exited."""
        if self._stderr_reader is not None:
            self._stderr_reader.join(timeout=1)  # it reads on until the pipe closes
        return ' / '.join(line for line in self._stderr if line) or 'no message'

    def _connect(self, process):
        """Connects once libvirtd accepts connections; it binds its sockets only when ready."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            if process.poll() is not None:
                process.wait()
                raise LibvirtdError('libvirtd exited with status {}: {}'.format(
                    process.returncode, self.last_words()))
            try:
                return libvirt.open(self.uri)
            except libvirt.libvirtError as e:
                if time.monotonic() > deadline:
                    self.kill()
                    raise LibvirtdError("libvirtd did not answer within {} s: {}".format(self.start_timeout, e))
            time.sleep(CONNECT_RETRY_INTERVAL)

    def wait(self):
        """Blocks until the current libvirtd exits; returns its exit status."""
        return self._process.wait()

    def kill(self):
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def stop(self):
        """Stops libvirtd for good (SIGTERM, then SIGKILL) and removes every file it or we made."""
        with self._lock:
            self._stopping = True
            process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        self.remove_files()

    def remove_files(self):
        # A libvirtd that was killed leaves its sockets and pid file behind.
        for name in SOCKET_NAMES + (PID_FILE, CONF_FILE):
            try:
                os.unlink(os.path.join(self.folder, name))
            except FileNotFoundError:
                pass
        shutil.rmtree(self._no_drivers, ignore_errors=True)
