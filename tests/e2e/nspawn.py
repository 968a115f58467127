"""A container booting this machine's own systemd as PID 1 (systemd-nspawn --volatile=yes: the host's
/usr read-only under a fresh tmpfs root; see ../shared/reference/SYSTEMD-HERE.md), with a tree of
files laid over its /usr, as `make install DESTDIR=...` made them.

The host has no system bus, so nspawn runs with --register=no --keep-unit, and everything inside is
done through nsenter into the container's namespaces. The container goes with stop(), or when this
process dies (SIGTERM to nspawn on parent death): none is left behind.
"""

import os
import signal
import subprocess
import time

BOOT_TIMEOUT = 60
STOP_TIMEOUT = 30
COMMAND_TIMEOUT = 60
# The container's first boot must not stop at systemd-firstboot's questions on the console.
INIT_ARGS = ['systemd.firstboot=off']
PROPAGATE_DIR = '/run/systemd/nspawn/propagate'
PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


class ContainerError(Exception):
    """The container did not boot or a command in it failed; the message says what and shows output."""


def nspawn_problem():
    """Why no container can be booted here, or None."""
    if os.geteuid() != 0:
        return 'systemd-nspawn needs root'
    for program in ('systemd-nspawn', 'nsenter'):
        if not any(os.access(os.path.join(d, program), os.X_OK) for d in PATH.split(':')):
            return '{} is not installed (apt: systemd-container, util-linux)'.format(program)
    return None


def _command_name(pid):
    try:
        with open('/proc/{}/comm'.format(pid)) as f:
            return f.read().strip()
    except OSError:
        return None


def _container_init(nspawn_pid):
    """The container's systemd, once nspawn's transient helper children have gone and it runs."""
    return next((pid for pid in _children(nspawn_pid) if _command_name(pid) == 'systemd'), None)


def _children(pid):
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/{}/stat'.format(entry)) as f:
                    fields = f.read().rsplit(') ', 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


class Container:
    """One booted container named `name`; usr_overlay: a folder laid over /usr (read-only);
    usr_upper: an empty folder that takes what is written to /usr inside (rpm installs there), the
    host's /usr untouched; binds: [(host path, container path)], read-only."""

    def __init__(self, name, usr_overlay=None, binds=(), log_path=None, usr_upper=None):
        self.name = name
        command = ['systemd-nspawn', '--quiet', '-D', '/', '--volatile=yes', '-b', '--machine', name,
                   '--register=no', '--keep-unit']
        if usr_overlay:
            command.append('--overlay-ro=/usr:{}:/usr'.format(usr_overlay))
        if usr_upper:
            command.append('--overlay=/usr:{}:/usr'.format(usr_upper))
        for source, target in binds:
            command.append('--bind-ro={}:{}'.format(source, target))
        self.command = command + INIT_ARGS
        self.log_path = log_path
        self._process = None
        self.init_pid = None

    def boot(self, timeout=BOOT_TIMEOUT):
        """Starts the container and returns once its systemd reached its default target (degraded
        counts: nftables fails in a container); ContainerError otherwise, with the console's last lines."""
        log = open(self.log_path, 'wb') if self.log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while self.init_pid is None:
            if self._process.poll() is not None:
                raise ContainerError('systemd-nspawn exited with {}: {}'.format(self._process.returncode,
                                                                                self.console()))
            if time.monotonic() > deadline:
                raise ContainerError('no init in the container after {} s: {}'.format(timeout, self.console()))
            # Not just any child: nspawn's own helper child may be there for a moment first.
            self.init_pid = _container_init(self._process.pid)
            time.sleep(0.05)
        # Until its systemd listens on its private socket, systemctl says "offline" at once.
        while True:
            state = self.run('systemctl', 'is-system-running', '--wait', check=False,
                             timeout=max(1, deadline - time.monotonic()))
            reply = state.stdout.strip()
            if reply in ('running', 'degraded'):
                return
            if reply not in ('offline', '') or time.monotonic() > deadline:
                raise ContainerError('the container did not boot: {} {}\n{}'.format(
                    reply, state.stderr, self.console()))
            time.sleep(0.1)

    def console(self):
        """The container's console output so far (its last 3000 characters)."""
        if not self.log_path or not os.path.exists(self.log_path):
            return ''
        with open(self.log_path, 'rb') as f:
            return f.read().decode(errors='replace')[-3000:]

    def run(self, *command, check=True, timeout=COMMAND_TIMEOUT, env=None, stdin=None):
        """Runs a command inside the container (all its namespaces, a clean environment), stdin its
        input; returns the CompletedProcess (text). check: ContainerError when it exits non-zero."""
        environment = ['PATH=' + PATH] + ['{}={}'.format(k, v) for k, v in (env or {}).items()]
        full = ['nsenter', '-t', str(self.init_pid), '-a', 'env', '-i'] + environment + list(command)
        try:
            result = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=stdin or '')
        except subprocess.TimeoutExpired:
            raise ContainerError('{} took longer than {} s'.format(' '.join(command), timeout))
        if check and result.returncode != 0:
            raise ContainerError('{} exited with {}:\n{}{}'.format(
                ' '.join(command), result.returncode, result.stdout, result.stderr))
        return result

    def write(self, path, text):
        """Writes a file inside the container (its folder made first)."""
        self.run('mkdir', '-p', os.path.dirname(path))
        self.run('sh', '-c', 'cat > "$0"', path, stdin=text)

    def path(self, inside):
        """The host's path to a file inside the running container (through its init's root)."""
        return '/proc/{}/root{}'.format(self.init_pid, inside)

    def systemctl(self, *args, check=True, timeout=COMMAND_TIMEOUT):
        return self.run('systemctl', *args, check=check, timeout=timeout)

    def show(self, unit, prop):
        return self.systemctl('show', '--value', '-p', prop, unit).stdout.strip()

    def stop(self):
        """Powers the container off (SIGTERM to nspawn), SIGKILL after STOP_TIMEOUT; returns nspawn's
        exit status."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        status = process.wait()
        # nspawn leaves this empty folder behind ("we can't allow that" on shutdown).
        try:
            os.rmdir(os.path.join(PROPAGATE_DIR, self.name))
        except OSError:
            pass
        return status


def _die_with_parent():
    # Should pytest be killed outright, nspawn powers the container off rather than leave it running.
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL('libc.so.6', use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
