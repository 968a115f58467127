"""The camvirtd process's plumbing: stopping on a signal whichever thread the kernel hands it to."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from rockit.camvirt.daemon import service
from testworld.support import REPO

# A process whose main thread waits on a StopRequest while it blocks SIGTERM itself, so that the
# kernel must deliver SIGTERM to its other thread: the case that left an Event.wait() asleep.
WAITER = textwrap.dedent('''
    import signal, threading, time
    from rockit.camvirt.daemon.service import StopRequest
    stop = StopRequest()
    threading.Thread(target=lambda: time.sleep(60), daemon=True).start()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    print('waiting', flush=True)
    stop.wait()
    print('stopped', flush=True)
''')


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_a_signal_received_by_another_thread_stops_the_wait(signum):
    process = subprocess.Popen([sys.executable, '-c', WAITER], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == 'waiting\n'
        os.kill(process.pid, signum)
        assert process.wait(10) == 0
        assert process.stdout.read() == 'stopped\n'
    finally:
        process.kill()
        process.wait()


def test_set_from_a_thread_stops_the_wait():
    script = WAITER.replace("threading.Thread(target=lambda: time.sleep(60)",
                            "threading.Thread(target=lambda: (time.sleep(0.2), stop.set())")
    result = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True, text=True, timeout=10)
    assert result.stdout == 'waiting\nstopped\n'


def test_a_state_file_that_would_be_the_config_itself_is_refused(tmp_path):
    # the state file is <state dir>/<config stem>.json: the config's own folder would clobber it.
    config = tmp_path / 'das1.json'
    config.write_text(open(os.path.join(REPO, 'config', 'superwasp_das1.json')).read())
    result = subprocess.run([os.path.join(REPO, 'camvirtd'), str(config), '--state-dir', str(tmp_path)],
                            env=dict(os.environ, CAMVIRTD_REGISTRY=''), capture_output=True, text=True, timeout=60)
    assert result.returncode == 78  # EXIT_BAD_CONFIG: the unit does not restart it
    assert result.stderr.strip() == 'camvirtd: {}: the state file would overwrite the config; give another ' \
        '--state-dir'.format(config)
    assert config.read_text() == open(os.path.join(REPO, 'config', 'superwasp_das1.json')).read()


def test_an_address_not_on_this_host_exits_with_the_status_the_unit_does_not_restart(tmp_path):
    registry = tmp_path / 'registry.json'
    registry.write_text(json.dumps({'machines': {'Elsewhere': '192.0.2.1'},  # TEST-NET-1: never this host
                                    'daemons': {'far': {'object_id': 'far', 'host': 'Elsewhere', 'port': 9999}}}))
    config = tmp_path / 'far.json'
    config.write_text(json.dumps({'daemon': 'far', 'log_name': 'x', 'control_machines': ['Elsewhere'],
                                  'initialize_timeout': 5, 'shutdown_timeout': 5, 'domains': {'cam1': {'cam1': 'far'}},
                                  'log_daemon': 'far'}))
    result = subprocess.run([os.path.join(REPO, 'camvirtd'), str(config), '--state-dir', str(tmp_path / 'state')],
                            env=dict(os.environ, CAMVIRTD_REGISTRY=str(registry)), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == service.EXIT_BAD_CONFIG, result.stderr
    assert 'that address is not on this host' in result.stderr and 'Traceback' not in result.stderr


def test_the_unit_does_not_restart_a_config_that_cannot_work_and_has_a_start_limit():
    unit = open(os.path.join(REPO, 'camvirtd@.service')).read().splitlines()
    assert 'RestartPreventExitStatus={}'.format(service.EXIT_BAD_CONFIG) in unit
    assert 'StartLimitBurst=10' in unit and 'StartLimitIntervalSec=300' in unit
