"""`camvirt status --watch` as a process: in a real terminal (tmux, its screen read back) a live view,
through a pipe plain lines on change; both ride through camvirtd restarting and end cleanly on Ctrl-C."""

import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time

import Pyro4.errors
import pytest
from tmuxterm import TMUX, TmuxTerminal

from rockit.camvirt.client.watch import StatusPoller
from testworld.support import REPO, deadline, free_port, wait_until

CAMVIRT = os.path.join(REPO, 'camvirt')
CAMVIRTD = os.path.join(REPO, 'camvirtd')
needs_tmux = pytest.mark.skipif(TMUX is None, reason='tmux is not installed (make apt)')


class CamvirtdProcess:
    """A real camvirtd process on libvirt's per-process test driver (its domain 'test' runs; its
    camera answers nowhere), on a fixed loopback port so that it can be stopped and started again."""

    def __init__(self, folder):
        self.port = free_port()
        registry = os.path.join(str(folder), 'registry.json')
        with open(registry, 'w') as f:
            json.dump({'daemons': {'camvirt': {'object_id': 'camvirt_daemon', 'host': 'LocalHost', 'port': self.port},
                                   'cam': {'object_id': 'cam', 'host': 'LocalHost', 'port': free_port()}}}, f)
        self.config = os.path.join(str(folder), 'watched.json')
        with open(self.config, 'w') as f:
            json.dump({'daemon': 'camvirt', 'log_name': 'x', 'control_machines': ['LocalHost'],
                       'initialize_timeout': 1, 'shutdown_timeout': 1, 'libvirt_uri': 'test:///default',
                       'log_daemon': 'cam', 'domains': {'test': {'cam1': 'cam'}}}, f)
        self.env = dict(os.environ, CAMVIRTD_REGISTRY=registry, CAMVIRTD_CONFIG_PATH=self.config)
        self.process = None

    def start(self):
        self.process = subprocess.Popen([CAMVIRTD, self.config], env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        assert wait_until(self._listening, 20), 'camvirtd did not start listening'

    def _listening(self):
        try:
            socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@pytest.fixture
def camvirtd(tmp_path):
    daemon = CamvirtdProcess(tmp_path)
    daemon.start()
    yield daemon
    daemon.stop()


@pytest.fixture
def terminal(tmp_path):
    terminals = []

    def start(command, env, width=160):
        term = TmuxTerminal(tmp_path, command, env, width=width)
        terminals.append(term)
        return term

    yield start
    for term in terminals:
        term.close()


def domain_line(screen, name):
    return next((line for line in screen.splitlines() if line.startswith(name)), '')


@needs_tmux
@pytest.mark.parametrize('width', [80, 120])
def test_live_view_follows_changes_and_ends_on_ctrl_c(make_world, tmp_path, terminal, width):
    world = make_world(domains=1)
    name = world.domain_names[0]
    term = terminal([CAMVIRT, 'status', '--watch'], world.client_env(tmp_path), width=width)
    assert term.wait_for(lambda s: 'shut off' in domain_line(s, name) and 'OFFLINE' in domain_line(s, name))
    assert world.call('initialize') == 0
    screen = term.wait_for(lambda s: 'running' in domain_line(s, name) and 'IDLE' in domain_line(s, name), 30)
    assert screen and 'Ctrl-C to quit' in screen
    assert 'last command: initialize command completed successfully' in screen
    term.send_keys('C-c')
    assert term.wait_for_exit() == 0  # all is as intended: the status exit code
    screen = term.screen()
    assert 'Traceback' not in screen and 'KeyboardInterrupt' not in screen
    assert 'IDLE' in domain_line(screen, name)  # the last view stays
    assert all(len(line) <= width for line in screen.splitlines()) and '\u2026' not in screen


@needs_tmux
def test_live_view_rides_through_a_camvirtd_restart(camvirtd, terminal):
    term = terminal([CAMVIRT, 'status', '--watch'], camvirtd.env)
    # The camera of the running 'test' domain answers nowhere: needs attention, and camvirtd is reached.
    screen = term.wait_for(lambda s: 'needs attention: camera cam1: camd' in s)
    assert screen and 'running' in domain_line(screen, 'test')
    camvirtd.stop()
    screen = term.wait_for(lambda s: 'camvirtd unreachable' in s, 30)
    assert screen and 'connection refused' in screen
    assert 'running' in domain_line(screen, 'test')  # the last status seen stays on screen
    camvirtd.start()
    assert term.wait_for(lambda s: 'unreachable' not in s and 'running' in domain_line(s, 'test'), 30)
    assert term.exit_status() is None  # it carried on through the restart
    term.send_keys('C-c')
    assert term.wait_for_exit() == 1  # the camera needs attention


class LineReader:
    """Lines of a pipe, read on a thread owned (and ended with the pipe) by the test."""

    def __init__(self, stream):
        self._lines = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            self._lines.put(line.rstrip('\n'))
        self._lines.put(None)

    def until(self, predicate, seconds=30):
        """Every line read up to and including the first for which predicate holds (None: at the deadline
        or the end of the pipe, with what was read)."""
        seen, end = [], deadline(seconds)
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                return seen, None
            if line is None:
                return seen, None
            seen.append(line)
            if predicate(line):
                return seen, line

    def join(self):
        self._thread.join(timeout=10)


CLOCK = r'\d\d:\d\d:\d\d '


def watch_process(env):
    return subprocess.Popen([CAMVIRT, 'status', '--watch'], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def end_with_ctrl_c(process):
    """SIGINT as Ctrl-C sends it; the exit status and stderr."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=30), process.stderr.read()
    finally:
        process.kill()
        process.wait()


def test_plain_lines_on_change_through_a_pipe(make_world, tmp_path):
    world = make_world(domains=1)
    name = world.domain_names[0]
    process = watch_process(world.client_env(tmp_path))
    with process:
        reader = LineReader(process.stdout)
        _, first = reader.until(lambda line: name in line)
        assert re.fullmatch(CLOCK + re.escape('{}: VM shut off; camera c1a OFFLINE'.format(name)), first)
        assert world.call('initialize') == 0
        seen, up = reader.until(lambda line: line.endswith('{}: VM running; camera c1a IDLE'.format(name)))
        assert up, seen
        assert '\033[' not in ''.join(seen)
        _, last = reader.until(lambda line: 'last command' in line)
        assert re.fullmatch(CLOCK + 'last command: initialize command completed successfully', last)
        code, errors = end_with_ctrl_c(process)
        assert code == 0 and 'Traceback' not in errors
        reader.join()


def test_plain_lines_ride_through_a_camvirtd_restart(camvirtd):
    process = watch_process(camvirtd.env)
    with process:
        reader = LineReader(process.stdout)
        _, first = reader.until(lambda line: 'test: VM running' in line)
        assert first
        camvirtd.stop()
        _, down = reader.until(lambda line: 'camvirtd unreachable' in line)
        assert down and 'connection refused' in down
        camvirtd.start()
        _, again = reader.until(lambda line: 'test: VM running' in line)
        assert again  # shown afresh once camvirtd answers again
        code, errors = end_with_ctrl_c(process)
        assert code == 1 and 'Traceback' not in errors
        reader.join()


def test_plain_watch_prints_nothing_when_nothing_changes(make_world, tmp_path):
    world = make_world(domains=1)
    process = watch_process(world.client_env(tmp_path))
    with process:
        reader = LineReader(process.stdout)
        assert reader.until(lambda line: world.domain_names[0] in line)[1]
        # An absence can only be watched for a while: three polls' worth.
        more, _ = reader.until(lambda line: True, seconds=3)
        assert more == []
        assert end_with_ctrl_c(process)[0] == 0
        reader.join()


def test_poller_rides_through_a_dropped_connection(make_world):
    world = make_world(domains=1)
    poller = StatusPoller(world.uri)
    try:
        status, error = poller.poll()
        assert error is None and status['domains'][0]['name'] == world.domain_names[0]
        # The kept connection dies as when camvirtd closes an idle one: the next poll gets through
        # on a fresh connection, with no error to show.
        poller._proxy._pyroConnection.sock.shutdown(socket.SHUT_RDWR)
        status, error = poller.poll()
        assert error is None and status['domains'][0]['name'] == world.domain_names[0]
    finally:
        poller.close()


def test_poller_says_why_when_nothing_answers():
    poller = StatusPoller('PYRO:x@127.0.0.1:{}'.format(free_port()))
    status, error = poller.poll()
    assert status is None and isinstance(error, Pyro4.errors.CommunicationError)
    poller.close()
