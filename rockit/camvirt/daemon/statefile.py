"""What camvirtd remembers across its own restarts: which domains should run and since when, their
unexpected stops, the automatic restarts of the last hour, the commands of the last week or so (the
last one first among them) and the one running now.

One small JSON file per config, `<config file stem>.json` in the state folder (see state_folder()),
rewritten atomically (temporary file, fsync, rename, fsync of the folder) at every change, so that a
camvirtd killed at any moment leaves either the old file or the new one, never half of one. A command
still recorded as running when camvirtd starts was cut off by camvirtd's own death: it becomes the
last command, failed, marked interrupted.

Across versions: keys are only ever added (FORMAT stays 1), and every entry allows keys it does not
know, so that a newer camvirtd reads what an older one wrote and keeps it (an RPM upgrade must not
forget which VMs should run), and an older one reads a newer file.
"""

import collections
import glob
import json
import math
import os
import secrets
import threading
import time

import jsonschema

from ..shared.constants import NAME_PATTERN, CommandStatus
from ..shared.errors import CamvirtError
from ..shared.jsonfile import JsonFileError, read_json_file
from ..shared.schemawords import schema_problems
from ..shared.statepaths import STATE_ENV, SYSTEM_STATE_DIR, state_folder, state_path  # noqa: F401
from ..shared.times import utc_iso
from .crashwatch import recent_restarts

LATEST_TIME = 253402300799  # 9999-12-31 23:59:59 UTC
FORMAT = 1
# Commands kept: a week of dusk and dawn is 14; crash restarts and commands by hand come on top.
HISTORY_SIZE = 100
BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id'
INTERRUPTED = 'interrupted: camvirtd stopped while it ran'
# How long a change waits for the write that records it: on a disk that answers, the write itself (so
# a command's record is on disk when its caller has the result); on a stuck disk, this long, then the
# change goes on and the writer thread writes the latest state once the disk answers again.
SAVE_WAIT = 1.0

_TIME = {'type': 'number'}
_TEXT = {'type': 'string', 'maxLength': 1000}
_DOMAINS = {'type': 'array', 'items': {'type': 'string', 'pattern': NAME_PATTERN}, 'maxItems': 64}
STATE_SCHEMA = {
    'type': 'object',
    'required': ['format', 'daemon'],
    'properties': {
        'format': {'type': 'integer'},
        'daemon': {'type': 'string', 'maxLength': 200},
        'config': _TEXT,
        'written': _TEXT,
        'boot_id': {'type': ['string', 'null'], 'maxLength': 64},  # null where the host has none
        'expected': {'type': 'object', 'maxProperties': 64, 'propertyNames': {'pattern': NAME_PATTERN},
                     'additionalProperties': _TIME},
        'stops': {'type': 'object', 'maxProperties': 64, 'propertyNames': {'pattern': NAME_PATTERN},
                  'additionalProperties': {
                      'type': 'object', 'required': ['state', 'time'],
                      'properties': {'state': {'type': 'string', 'maxLength': 32}, 'time': _TIME,
                                     'reason': {'type': 'string', 'maxLength': 200},
                                     'detail': {'type': 'string', 'maxLength': 200}}}},
        'restarts': {'type': 'array', 'items': _TIME, 'maxItems': 1000},
        # As report_status() gives it (problems as 'message', '; '-joined, or a 'problems' list), kept
        # as it was: other keys are allowed, so that a newer camvirtd's record still reads.
        'last_command': {'type': ['object', 'null'], 'required': ['name', 'domains', 'status', 'time'],
                         'properties': {'name': {'type': 'string', 'maxLength': 32}, 'domains': _DOMAINS,
                                        'status': {'type': 'integer'}, 'message': _TEXT, 'time': _TEXT,
                                        'problems': {'type': 'array', 'items': _TEXT, 'maxItems': 100},
                                        'interrupted': {'type': 'boolean'}}},
        # Finished commands, oldest first: last_command's entries (with caller, started, duration).
        'history': {'type': 'array', 'maxItems': HISTORY_SIZE, 'items': {
            'type': 'object', 'required': ['name', 'status', 'time'],
            'properties': {'name': {'type': 'string', 'maxLength': 32}, 'domains': _DOMAINS,
                           'status': {'type': 'integer'}, 'time': _TEXT, 'started': _TEXT,
                           'caller': {'type': ['string', 'null'], 'maxLength': 200},
                           'duration': {'type': 'number', 'minimum': 0, 'maximum': LATEST_TIME},
                           'problems': {'type': 'array', 'items': _TEXT, 'maxItems': 100}}}},
        'command': {'type': ['object', 'null'], 'required': ['name', 'domains', 'started'],
                    'properties': {'name': {'type': 'string', 'maxLength': 32}, 'domains': _DOMAINS,
                                   'started': _TIME, 'caller': {'type': ['string', 'null'], 'maxLength': 100}}},
    },
}


def boot_id():
    """This boot of the host (the kernel's random boot id), or None where there is none."""
    try:
        with open(BOOT_ID_PATH) as f:
            return f.read(64).strip() or None
    except OSError:
        return None


TEMPORARY_ATTEMPTS = 5


def temporary_suffix():
    return secrets.token_hex(8)


def write_atomically(path, text):
    """Replaces the file at `path` with `text`: a reader (or a camvirtd killed at any moment) sees the
    old content or the new one. The folder is created when missing.

    Everything after opening the folder acts on file descriptors: the temporary file is created new
    (O_EXCL, O_NOFOLLOW) in the folder's descriptor, its mode set with fchmod, renamed within that
    folder and the folder fsynced. So whoever owns the folder (the camvirtd user, by StateDirectory)
    and swaps or plants files in it while a root camvirtd writes cannot make it write, chmod or
    rename anything outside it; they can only change what camvirtd finds there next time."""
    folder = os.path.dirname(path) or '.'
    name = os.path.basename(path)
    os.makedirs(folder, mode=0o755, exist_ok=True)
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        tmp = _write_temporary(dir_fd, name, text)
        try:
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            _unlink_quietly(tmp, dir_fd)
            raise
        os.fsync(dir_fd)  # the rename itself is durable only once the folder is
    finally:
        os.close(dir_fd)


def _create_temporary(dir_fd, name):
    """(name, fd) of a new file in dir_fd; a name taken already (a file or link planted there) is
    passed over, a few times."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for attempt in range(TEMPORARY_ATTEMPTS):
        tmp = '.{}.{}.tmp'.format(name, temporary_suffix())
        try:
            return tmp, os.open(tmp, flags, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            if attempt == TEMPORARY_ATTEMPTS - 1:
                raise
    raise AssertionError('unreachable')


def _write_temporary(dir_fd, name, text):
    """The name of a new file in dir_fd holding `text`, written through and mode 0644."""
    tmp, fd = _create_temporary(dir_fd, name)
    try:
        data = text.encode()
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
        os.fchmod(fd, 0o644)
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp, dir_fd)
        raise
    os.close(fd)
    return tmp


def _unlink_quietly(name, dir_fd):
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def remove_leftovers(path):
    """Temporary files of writes cut off midway (camvirtd killed between create and rename)."""
    pattern = os.path.join(glob.escape(os.path.dirname(path) or '.'),
                           '.{}.*.tmp'.format(glob.escape(os.path.basename(path))))
    for leftover in glob.glob(pattern):
        try:
            os.unlink(leftover)
        except OSError:
            pass


class StateFileError(CamvirtError):
    """A state file that cannot be used; one line naming the file."""




def _finite_times(data):
    times = list(data.get('expected', {}).values()) + list(data.get('restarts', []))
    times += [stop['time'] for stop in data.get('stops', {}).values()]
    if data.get('command'):
        times.append(data['command']['started'])
    # Finite, and within what a date can show (1970 to 9999): a time from a hand-edited or damaged file
    # must not crash camvirtd at start nor every status query after it.
    return all(isinstance(t, (int, float)) and math.isfinite(t) and 0 <= t <= LATEST_TIME for t in times)


def read_state(path, daemon_name):
    """The parsed state file, None when there is none, StateFileError when it cannot be used."""
    if not os.path.lexists(path):
        return None
    try:
        data = read_json_file(path, 'state file')
    except JsonFileError as e:
        raise StateFileError(str(e)) from None
    problems = schema_problems(jsonschema.Draft7Validator(STATE_SCHEMA), data)
    if problems:
        key, message = problems[0]
        raise StateFileError('{}: state file: {}: {}'.format(path, key, message))
    if data['format'] != FORMAT:
        raise StateFileError('{}: state file has format {}, this camvirtd writes {}'.format(
            path, data['format'], FORMAT))
    if data['daemon'] != daemon_name:
        raise StateFileError('{}: state file was written for daemon {!r}, this one is {!r}'.format(
            path, data['daemon'][:64], daemon_name))
    if not _finite_times(data):
        raise StateFileError('{}: state file: a time is not a finite number between 1970 and 9999'.format(path))
    return data


def interrupted_command(command):
    """The last_command entry for a command camvirtd's death cut off (its problem both as 'message'
    and as 'problems', for either form of the client)."""
    problem = '{} (started {} by {})'.format(INTERRUPTED, utc_iso(command['started']),
                                            command.get('caller') or 'unknown')
    return {'name': command['name'], 'domains': command['domains'], 'status': CommandStatus.Failed,
            'message': problem, 'problems': [problem], 'time': utc_iso(command['started']), 'interrupted': True,
            'caller': command.get('caller'), 'started': utc_iso(command['started'])}


def _plural(count, word):
    return '{} {}{}'.format(count, word, '' if count == 1 else 's')


class Remembered:
    """What a start takes back from the state file, as plain data: the crash watch's part (which
    domains should run since when, their unexpected stops, the restart times that still count, whether
    the host restarted since) and the last command to show."""

    def __init__(self, expected=None, stops=None, restarts=(), host_restarted=False, last_command=None):
        self.expected = dict(expected or {})
        self.stops = dict(stops or {})
        self.restarts = list(restarts)
        self.host_restarted = host_restarted
        self.last_command = last_command


class DaemonMemory:
    """camvirtd's memory: restored from the state file at start, written back at every change.
    Writing never raises: a state file that cannot be written is an error in the log (once per
    distinct reason), and camvirtd goes on serving."""

    def __init__(self, path, daemon_name, config_path, log):
        self.path = path
        self._daemon = daemon_name
        self._config_path = config_path
        self._log = log
        # What is remembered has a lock of its own, so that a write stuck on the disk never holds up a
        # query of the history; writes are made by one writer thread (see save()).
        self._lock = threading.Lock()
        self._writes = threading.Condition()
        self._asked = 0  # saves asked for so far
        self._written = 0  # of those, how many the writes made so far include
        self._writer = None
        self._closing = False
        self._slow_write = False
        self._crash_state = None  # include()'s source
        self._running = None
        self._last = None
        self._history = []
        self._write_error = None

    # --- start --------------------------------------------------------------------------------

    def restore(self, domains, now=None):
        """What the state file remembers, as a Remembered (empty when there is no good file). Entries
        for domains not in `domains` are dropped."""
        now = time.time() if now is None else now
        remove_leftovers(self.path)
        data = self._read()
        if data is None:
            return Remembered()
        return self._apply(data, set(domains), now)

    def include(self, crash_state):
        """From now on every write includes `crash_state(now)` (the crash watch's snapshot); writes now."""
        self._crash_state = crash_state
        self.save()

    def _read(self):
        try:
            data = read_state(self.path, self._daemon)
        except StateFileError as e:
            self._log.warning('{}{}; starting with nothing remembered'.format(e, self._keep_aside()))
            return None
        if data is None:
            self._log.info('no state file at {}: first start, nothing to remember'.format(self.path))
        return data

    def _apply(self, data, domains, now):
        dropped = sorted((set(data.get('expected', {})) | set(data.get('stops', {}))) - domains)
        if dropped:
            self._log.info('{}: dropped {} no longer in the config: {}'.format(
                self.path, 'a domain' if len(dropped) == 1 else 'domains', ', '.join(dropped[:10])))
        remembered = Remembered(
            expected={n: t for n, t in data.get('expected', {}).items() if n in domains},
            stops={n: s for n, s in data.get('stops', {}).items() if n in domains},
            restarts=recent_restarts(data.get('restarts', []), now),
            host_restarted=bool(data.get('boot_id')) and boot_id() not in (None, data.get('boot_id')))
        last = data.get('last_command')
        # A file from before the history was kept: its last command starts the history.
        history = data['history'] if 'history' in data else [last] if last else []
        if data.get('command'):
            last = interrupted_command(data['command'])
            history.append(last)
            self._log.error('{} ({}) was {}'.format(last['name'], ', '.join(last['domains']), last['message']))
        self._last = remembered.last_command = last
        self._history = history[-HISTORY_SIZE:]
        self._log.info('state restored from {}: {}; {} in the last hour{}'.format(
            self.path, 'should run: ' + ', '.join(sorted(remembered.expected)) if remembered.expected
            else 'no domain should run', _plural(len(remembered.restarts), 'automatic restart'),
            ' (the host has restarted since)' if remembered.host_restarted else ''))
        return remembered

    def _keep_aside(self):
        """Moves a bad state file (a regular one) to <path>.bad for a look later; says so."""
        if not os.path.isfile(self.path) or os.path.islink(self.path):
            return ''
        try:
            os.replace(self.path, self.path + '.bad')
        except OSError:
            return ''
        return '; kept as {}.bad'.format(self.path)

    # --- changes --------------------------------------------------------------------------------

    def command_started(self, name, domains, caller, now=None):
        with self._lock:
            self._running = {'name': name, 'domains': list(domains), 'caller': caller,
                             'started': time.time() if now is None else now}
        self.save()

    def command_finished(self, last_command):
        with self._lock:
            self._running = None
            self._last = dict(last_command)
            self._history = (self._history + [self._last])[-HISTORY_SIZE:]
        self.save()

    def history(self):
        """The commands remembered, oldest first."""
        with self._lock:
            return list(self._history)

    def save(self, wait=SAVE_WAIT):
        """Has what is remembered now written, by the writer thread, and waits up to `wait` seconds for
        that write. Each write snapshots the latest state, so a later state is never overwritten by an
        earlier one, and changes asked for while a write is under way go in one next write."""
        with self._writes:
            if self._closing:
                return
            self._asked += 1
            wanted = self._asked
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name='state-file', daemon=True)
                self._writer.start()
            self._writes.notify_all()
            if not self._writes.wait_for(lambda: self._written >= wanted, wait):
                self._note_slow_write(wait)

    def flush(self, timeout):
        """Waits up to `timeout` seconds until every change asked for is written; whether it was."""
        with self._writes:
            return self._writes.wait_for(lambda: self._written >= self._asked, timeout)

    def close(self, timeout):
        """Writes what is still to be written (waiting up to `timeout` seconds) and ends the writer."""
        self.flush(timeout)
        with self._writes:
            self._closing = True
            self._writes.notify_all()
            writer = self._writer
        if writer is not None:
            writer.join(timeout)

    def _write_loop(self):
        while True:
            with self._writes:
                self._writes.wait_for(lambda: self._asked > self._written or self._closing)
                if self._asked == self._written:
                    return  # closing, nothing left to write
                upto = self._asked
            self._write_now()
            with self._writes:
                self._written = upto
                self._writes.notify_all()

    def _write_now(self):
        with self._lock:
            data = {'format': FORMAT, 'daemon': self._daemon, 'config': self._config_path,
                    'written': utc_iso(time.time()), 'command': self._running, 'last_command': self._last,
                    'history': list(self._history)}
        # Only a boot id there is: a file with none must still read back (a host without one).
        this_boot = boot_id()
        if this_boot is not None:
            data['boot_id'] = this_boot
        if self._crash_state is not None:
            data.update(self._crash_state(time.time()))
        try:
            write_atomically(self.path, _to_json(data))
        except OSError as e:
            self._note_write_error('{}: cannot write state file: {}'.format(self.path, e.strerror or e))
            return
        if self._write_error is not None or self._slow_write:
            self._log.info('{}: state file written again'.format(self.path))
        self._write_error = None
        self._slow_write = False

    def _note_slow_write(self, wait):
        if not self._slow_write:
            self._log.error('{}: a state file write has taken more than {:g} s (a slow or stuck disk); camvirtd '
                            'goes on and writes the latest state when the disk answers'.format(self.path, wait))
        self._slow_write = True

    def _note_write_error(self, message):
        if message != self._write_error:
            self._log.error('{} (what camvirtd remembers would be lost at its next restart)'.format(message))
        self._write_error = message


def _to_json(data):
    return json.dumps(data, indent=1, sort_keys=True) + '\n'


class NoMemory:
    """A camvirtd that remembers nothing across restarts (in-process tests, the benchmark): its
    history lasts as long as the process."""

    path = None

    def __init__(self):
        self._history = collections.deque(maxlen=HISTORY_SIZE)

    def restore(self, domains, now=None):
        return Remembered()

    def include(self, crash_state):
        pass

    def flush(self, timeout):
        return True

    def close(self, timeout):
        pass

    def command_started(self, name, domains, caller, now=None):
        pass

    def command_finished(self, last_command):
        self._history.append(dict(last_command))

    def history(self):
        return list(self._history)

    def save(self, wait=SAVE_WAIT):
        pass
