"""The state file: where it lives, atomic writes, what a start makes of a good, missing, corrupt or
foreign file, and a command cut off by camvirtd's death."""

import json
import os
import threading
import time

import pytest

from rockit.camvirt.daemon import statefile
from rockit.camvirt.daemon.commands import remember_crashes
from rockit.camvirt.daemon.crashwatch import STOPPED_WHILE_DOWN, CrashWatch
from rockit.camvirt.daemon.statefile import (
    INTERRUPTED,
    SYSTEM_STATE_DIR,
    DaemonMemory,
    StateFileError,
    read_state,
    state_folder,
    state_path,
    write_atomically,
)
from rockit.camvirt.shared.constants import CommandStatus, VMState
from testworld.support import ListLog

DAEMON = 'superwasp_camvirt_das1'
DOMAINS = ['cam1', 'cam2']


OPENED = []  # every DaemonMemory a test made, closed after it (each has a writer thread)


@pytest.fixture(autouse=True)
def close_memories():
    yield
    while OPENED:
        OPENED.pop().close(timeout=5)


def memory(tmp_path, log=None, path=None):
    kept = DaemonMemory(path or str(tmp_path / 'das1.json'), DAEMON, '/etc/camvirtd/das1.json', log or ListLog())
    OPENED.append(kept)
    return kept


def test_the_folder_comes_from_the_option_then_systemd_then_a_default(monkeypatch):
    assert state_folder('/x', {'STATE_DIRECTORY': '/y'}) == '/x'
    assert state_folder(None, {'STATE_DIRECTORY': '/var/lib/camvirtd:/var/lib/other'}) == '/var/lib/camvirtd'
    monkeypatch.setattr(os, 'geteuid', lambda: 0)
    assert state_folder(None, {}) == SYSTEM_STATE_DIR
    monkeypatch.setattr(os, 'geteuid', lambda: 1000)
    assert state_folder(None, {'XDG_STATE_HOME': '/home/u/st'}) == '/home/u/st/camvirtd'
    assert state_path('/var/lib/camvirtd', '/etc/camvirtd/superwasp_das1.json') == \
        '/var/lib/camvirtd/superwasp_das1.json'


def test_an_atomic_write_leaves_only_the_new_file(tmp_path):
    path = str(tmp_path / 'sub' / 'x.json')
    write_atomically(path, 'one')
    write_atomically(path, 'two')
    assert open(path).read() == 'two'
    assert os.listdir(str(tmp_path / 'sub')) == ['x.json']


def test_what_is_remembered_comes_back_after_a_restart(tmp_path):
    now = time.time()
    first = memory(tmp_path)
    watch = CrashWatch(3)
    assert remember_crashes(first, watch, DOMAINS, now) is None
    first.command_started('initialize', DOMAINS, '127.0.0.1', now=now)
    watch.expect_running(DOMAINS, now=now + 1)
    last = {'name': 'initialize', 'domains': DOMAINS, 'status': 0, 'message': '', 'time': 'T'}
    first.command_finished(last)
    watch.take_restart(now + 2)

    log = ListLog()
    again = CrashWatch(3)
    assert remember_crashes(memory(tmp_path, log), again, DOMAINS, now + 3) == last
    assert again.snapshot(now + 3) == {'expected': {'cam1': now + 1, 'cam2': now + 1}, 'stops': {},
                                       'restarts': [now + 2]}
    assert 'state restored from {}: should run: cam1, cam2; 1 automatic restart in the last hour'.format(
        tmp_path / 'das1.json') in log.text()
    assert again.observe('cam1', VMState.ShutOff, now + 4)
    assert again.unexpected_stop('cam1')['reason'] == STOPPED_WHILE_DOWN


def test_a_host_whose_boot_id_cannot_be_read_still_reads_its_state_back(tmp_path, monkeypatch):
    # As under a unit that hides /proc/sys: no boot id to write, and the file must still load.
    monkeypatch.setattr('rockit.camvirt.daemon.statefile.BOOT_ID_PATH', str(tmp_path / 'no-boot-id'))
    first = memory(tmp_path)
    watch = CrashWatch(3)
    remember_crashes(first, watch, DOMAINS, 1000.0)
    watch.expect_running(['cam1'], now=1001.0)
    last = {'name': 'initialize', 'domains': ['cam1'], 'status': 0, 'message': '', 'time': 'T'}
    first.command_finished(last)
    assert 'boot_id' not in json.loads((tmp_path / 'das1.json').read_text())
    log = ListLog()
    again = CrashWatch(3)
    assert remember_crashes(memory(tmp_path, log), again, DOMAINS, 1002.0) == last
    assert again.snapshot(1002.0)['expected'] == {'cam1': 1001.0}
    assert 'warning' not in log.text().lower(), log.text()


def test_a_command_cut_off_is_remembered_as_interrupted(tmp_path):
    first = memory(tmp_path)
    remember_crashes(first, CrashWatch(3), DOMAINS, 1000.0)
    first.command_started('shutdown', ['cam2'], '10.2.6.160', now=1000.0)
    # camvirtd dies here.
    log = ListLog()
    last = remember_crashes(memory(tmp_path, log), CrashWatch(3), DOMAINS, time.time())
    assert last['status'] == CommandStatus.Failed and last['interrupted'] is True
    assert last['message'].startswith(INTERRUPTED) and '10.2.6.160' in last['message']
    assert 'error: shutdown (cam2) was interrupted: camvirtd stopped while it ran' in log.text()
    # ... and written back as the last command, no longer as running.
    assert json.loads((tmp_path / 'das1.json').read_text())['command'] is None


def test_domains_no_longer_in_the_config_are_dropped(tmp_path):
    first = memory(tmp_path)
    watch = CrashWatch(3)
    remember_crashes(first, watch, ['cam1', 'cam9'], 1000.0)
    watch.expect_running(['cam1', 'cam9'], now=1000.0)
    log = ListLog()
    again = CrashWatch(3)
    remember_crashes(memory(tmp_path, log), again, DOMAINS, 1001.0)
    assert list(again.snapshot(1001.0)['expected']) == ['cam1']
    assert 'info: {}: dropped a domain no longer in the config: cam9'.format(tmp_path / 'das1.json') in log.text()


def test_no_file_is_a_first_start(tmp_path):
    log = ListLog()
    remember_crashes(memory(tmp_path, log), CrashWatch(3), DOMAINS, time.time())
    assert log.lines == [('info', 'no state file at {}: first start, nothing to remember'.format(
        tmp_path / 'das1.json'))]
    assert (tmp_path / 'das1.json').exists()


def other_daemon(path):
    path.write_text(json.dumps({'format': 1, 'daemon': 'clasp_camvirt_das'}))


BAD_FILES = {
    'not json': (lambda p: p.write_text('{"format": 1, "dae'), 'is not valid JSON'),
    'not an object': (lambda p: p.write_text('[1, 2]'), 'state file: (top level): must be an object, not a list'),
    'a folder': (lambda p: p.mkdir(), 'a directory, not a regular file'),
    'a fifo': (lambda p: os.mkfifo(str(p)), 'a FIFO, not a regular file'),
    'another daemon': (other_daemon, "written for daemon 'clasp_camvirt_das', this one is '{}'".format(DAEMON)),
    'a time that is not finite': (
        lambda p: p.write_text(json.dumps({'format': 1, 'daemon': DAEMON, 'expected': {'cam1': float('nan')}})),
        'a time is not a finite number'),
    'a time past what a date can show': (
        lambda p: p.write_text(json.dumps({'format': 1, 'daemon': DAEMON, 'stops': {
            'cam1': {'state': 'shut off', 'time': 1e20, 'reason': 'stopped unexpectedly'}}})),
        'a time is not a finite number between 1970 and 9999'),
    'a time before 1970': (
        lambda p: p.write_text(json.dumps({'format': 1, 'daemon': DAEMON, 'stops': {
            'cam1': {'state': 'shut off', 'time': -1e13, 'reason': 'stopped unexpectedly'}}})),
        'a time is not a finite number between 1970 and 9999'),
    'a bad domain name': (
        lambda p: p.write_text(json.dumps({'format': 1, 'daemon': DAEMON, 'expected': {'a b': 1}})),
        "'a b' is not a name of 1-64 letters, digits and ._+-"),
    'too large': (lambda p: p.write_text(' ' * (2 << 20)), 'state file is larger than 1024 KiB'),
}


@pytest.mark.parametrize('case', sorted(BAD_FILES))
def test_a_bad_file_is_one_warning_and_a_clean_start(tmp_path, case):
    make, expected = BAD_FILES[case]
    path = tmp_path / 'das1.json'
    make(path)
    with pytest.raises(StateFileError):
        read_state(str(path), DAEMON)
    log = ListLog()
    watch = CrashWatch(3)
    assert remember_crashes(memory(tmp_path, log), watch, DOMAINS, time.time()) is None
    assert watch.snapshot(0)['expected'] == {}
    warnings = [message for level, message in log.lines if level == 'warning']
    assert len(warnings) == 1 and len(log.lines) <= 2, log.lines  # the warning, and a failed rewrite at most
    assert warnings[0].startswith(str(path)) and expected in warnings[0], warnings[0]
    # Sane length: the line names the file (twice, with its .bad copy) and says little more.
    assert warnings[0].endswith('; starting with nothing remembered')
    assert len(warnings[0].replace(str(path), '')) < 220, warnings[0]
    if os.path.exists(str(path) + '.bad'):  # a regular file is kept aside for a look, and replaced
        assert 'kept as {}.bad'.format(path) in warnings[0]
        assert read_state(str(path), DAEMON)['expected'] == {}


def test_a_file_that_cannot_be_written_is_one_error_and_camvirtd_goes_on(tmp_path):
    blocker = tmp_path / 'not-a-folder'
    blocker.write_text('')
    log = ListLog()
    kept = memory(tmp_path, log, path=str(blocker / 'das1.json'))
    watch = CrashWatch(3)
    remember_crashes(kept, watch, DOMAINS, time.time())
    watch.expect_running(['cam1'])
    watch.expect_off(['cam1'])
    errors = [message for level, message in log.lines if level == 'error']
    assert len(errors) == 1 and 'cannot write state file' in errors[0], log.lines


def test_a_last_command_with_a_problems_list_reads_too(tmp_path):
    last = {'name': 'shutdown', 'domains': ['cam1'], 'status': 1, 'problems': ['domain cam1 is still running'],
            'time': 'T'}
    (tmp_path / 'das1.json').write_text(json.dumps({'format': 1, 'daemon': DAEMON, 'last_command': last}))
    assert remember_crashes(memory(tmp_path), CrashWatch(3), DOMAINS, time.time()) == last


def test_a_write_follows_no_symlink_swapped_in_while_it_runs(tmp_path, monkeypatch):
    # The state folder's owner swaps the temporary file for a symlink to a file of someone else's
    # while camvirtd (run as root, say) writes: the victim's mode and content stay as they were.
    folder = tmp_path / 'state'
    folder.mkdir()
    victim = tmp_path / 'victim'
    victim.write_text('secret')
    victim.chmod(0o600)
    path = str(folder / 'x.json')
    real_fsync = os.fsync

    def swap_then_fsync(fd):
        for name in os.listdir(str(folder)):
            if name.endswith('.tmp'):
                os.replace(str(folder / name), str(folder / (name + '.moved')))
                os.symlink(str(victim), str(folder / name))
        real_fsync(fd)

    monkeypatch.setattr(os, 'fsync', swap_then_fsync)
    try:
        write_atomically(path, 'state')
    except OSError:
        pass  # refusing the swapped file is fine too
    monkeypatch.setattr(os, 'fsync', real_fsync)
    assert oct(victim.stat().st_mode & 0o777) == oct(0o600)
    assert victim.read_text() == 'secret'


def test_a_symlink_planted_at_a_temporary_name_is_never_written_through(tmp_path, monkeypatch):
    folder = tmp_path / 'state'
    folder.mkdir()
    victim = tmp_path / 'victim'
    victim.write_text('secret')
    names = iter(['planted'])
    os.symlink(str(victim), str(folder / '.x.json.planted.tmp'))
    monkeypatch.setattr(statefile, 'temporary_suffix', lambda: next(names, 'fresh'))
    write_atomically(str(folder / 'x.json'), 'state')
    assert victim.read_text() == 'secret' and (folder / 'x.json').read_text() == 'state'
# A state file as the camvirtd before the command history wrote it (format 1, no 'history'): what an
# RPM upgrade finds in /var/lib/camvirtd.
OLDER_FILE = {
    'format': 1, 'daemon': DAEMON, 'config': '/etc/camvirtd/das1.json', 'written': '2026-11-30T21:01:00+00:00',
    'boot_id': None, 'command': None,
    'expected': {'cam1': 1764536460.0, 'cam2': 1764536460.0},
    'stops': {}, 'restarts': [],
    'last_command': {'name': 'initialize', 'domains': ['cam1', 'cam2'], 'status': 0, 'problems': [],
                     'time': '2026-11-30T21:01:00+00:00'},
}


def test_a_newer_camvirtd_reads_an_older_file_and_keeps_what_it_remembered(tmp_path):
    path = tmp_path / 'das1.json'
    path.write_text(json.dumps(OLDER_FILE))
    watch = CrashWatch(3)
    kept = memory(tmp_path)
    assert remember_crashes(kept, watch, DOMAINS, 1764540000.0) == OLDER_FILE['last_command']
    assert sorted(watch.expected_running()) == DOMAINS  # which VMs should run survives the upgrade
    assert kept.history() == [OLDER_FILE['last_command']]  # the last command starts the history
    written = json.loads(path.read_text())
    assert written['expected'] == OLDER_FILE['expected'] and written['history'] == [OLDER_FILE['last_command']]


def test_an_older_camvirtd_reads_a_newer_file(tmp_path):
    """Keys are only added: the older reader's schema (kept here as it was) accepts what this one writes."""
    kept = memory(tmp_path)
    remember_crashes(kept, CrashWatch(3), DOMAINS, 1000.0)
    kept.command_started('initialize', DOMAINS, 'STINGTCS at 10.2.6.160', now=1000.0)
    kept.command_finished({'name': 'initialize', 'domains': DOMAINS, 'status': 1, 'problems': ['x'], 'time': 'T',
                           'caller': 'STINGTCS at 10.2.6.160', 'started': 'S', 'duration': 12.5})
    data = json.loads((tmp_path / 'das1.json').read_text())
    older_schema = json.loads(json.dumps(statefile.STATE_SCHEMA))
    del older_schema['properties']['history']
    assert statefile.schema_problems(statefile.jsonschema.Draft7Validator(older_schema), data) == []


def test_the_history_keeps_the_last_commands_with_caller_start_and_duration(tmp_path):
    kept = memory(tmp_path)
    remember_crashes(kept, CrashWatch(3), DOMAINS, 1000.0)
    for i in range(statefile.HISTORY_SIZE + 5):
        kept.command_started('shutdown', ['cam1'], 'STINGTCS at 10.2.6.160', now=1000.0 + i)
        kept.command_finished({'name': 'shutdown', 'domains': ['cam1'], 'status': 0, 'problems': [], 'time': str(i),
                               'caller': 'STINGTCS at 10.2.6.160', 'started': str(i), 'duration': 1.5})
    kept.command_started('initialize', DOMAINS, '10.2.6.99', now=2000.0)
    # camvirtd dies here: the command cut off is the newest entry after the restart.
    again = memory(tmp_path)
    remember_crashes(again, CrashWatch(3), DOMAINS, 2001.0)
    history = again.history()
    assert len(history) == statefile.HISTORY_SIZE
    assert history[0]['time'] == '6' and history[-2]['time'] == str(statefile.HISTORY_SIZE + 4)
    assert history[-1]['interrupted'] and history[-1]['caller'] == '10.2.6.99'


def test_close_writes_what_is_left_and_ends_the_writer(tmp_path):
    kept = memory(tmp_path)
    watch = CrashWatch(3)
    remember_crashes(kept, watch, DOMAINS, time.time())
    watch.expect_running(['cam1'])
    assert kept.flush(5)
    before = set(threading.enumerate())
    kept.close(5)
    assert len([t for t in before if t.name == 'state-file' and not t.is_alive()]) == 1  # its writer ended
    assert list(read_state(kept.path, DAEMON)['expected']) == ['cam1']
    kept.save()  # after close: nothing, and no thread started again
    assert [t for t in threading.enumerate() if t.name == 'state-file' and t not in before] == []
