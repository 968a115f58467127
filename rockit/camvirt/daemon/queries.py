"""The queries: one camera's status for the dashboard, and the whole host's for `camvirt status`."""

import math

from ..shared.constants import OFFLINE_CAMERA_STATUS, CameraState, CommandStatus, VMState
from ..shared.quoting import quote
from ..shared.times import utc_iso
from .arguments import is_camera_id
from .crashwatch import STOPPED


def unknown_camera(camera_id, cameras):
    return ValueError('unknown camera id {} (this camvirtd has {})'.format(
        quote(camera_id), ', '.join(sorted(cameras))))


class Status:
    def __init__(self, config, hypervisor, probe, commands, workers, devices):
        self._config = config
        self._hypervisor = hypervisor
        self._probe = probe
        self._commands = commands
        self._workers = workers
        self._devices = devices

    def camera(self, camera_id):
        """camd's report_status() with 'vm_active': True, or the offline reply when its VM is off or a
        command acts on its domain (as the daemon camvirtd replaces did, for the dashboard). A camd
        that gives no status within camera_timeout while its VM runs raises an error naming it (a
        builtin TimeoutError, or ConnectionError), as the original passed camd's error on: vm_active
        says only whether the VM runs, and the dashboard shows "Lost contact"."""
        camera = self._config.cameras.get(camera_id) if is_camera_id(camera_id) else None
        if camera is None:
            raise unknown_camera(camera_id, self._config.cameras)
        if self._offline(camera):
            return dict(OFFLINE_CAMERA_STATUS)
        answer = self._probe.query(camera.address)
        if answer.status is not None:
            return with_vm_active(answer.status)
        if self._offline(camera):  # it stopped, or a command took it, while camd was asked
            return dict(OFFLINE_CAMERA_STATUS)
        raise camd_not_answering(camera, answer)

    def _offline(self, camera):
        return camera.domain in self._commands.busy_domains() or \
            self._hypervisor.state(camera.domain) not in VMState.PROBED

    def _camera_status(self, camera, vm_state):
        """(reply for the camera's row, how camd is: CAMD_ANSWERS, CAMD_NOT_ANSWERING or CAMD_NOT_ASKED,
        why it does not answer or None)."""
        if vm_state not in VMState.PROBED:
            return dict(OFFLINE_CAMERA_STATUS), CAMD_NOT_ASKED, None
        answer = self._probe.query(camera.address)
        if answer.status is None:
            return dict(OFFLINE_CAMERA_STATUS, vm_active=True), CAMD_NOT_ANSWERING, describe_camd(camera, answer)
        return with_vm_active(answer.status), CAMD_ANSWERS, None

    def history(self):
        return self._commands.history()

    def report(self):
        """Every domain's state since when, each camera's status, the running and last command. Here
        cameras are asked also while a command acts on them: its progress is what camvirt shows."""
        states = self._hypervisor.states()
        cameras = list(self._config.cameras.values())
        statuses = self._workers.run_parallel(lambda c: self._camera_status(c, states[c.domain].state), cameras)
        by_id = {c.id: s if isinstance(s, tuple) else (dict(OFFLINE_CAMERA_STATUS), CAMD_NOT_ASKED, None)
                 for c, s in zip(cameras, statuses)}
        running = self._commands.running_detail()
        should_run = set(self._commands.should_run())
        return {
            'daemon': self._config.daemon_name,
            'libvirt_uri': self._hypervisor.uri,
            'libvirt_connected': self._hypervisor.connected,
            'libvirt_error': self._hypervisor.last_error,  # libvirt's words for why it is unreachable
            'command': running['name'] if running else None,
            # Which command runs, for whom, since and until when at the latest (for a refused caller).
            'running_command': running,
            'last_command': self._commands.last_command,
            'last_failed': last_failed(self._commands.history()),
            # What camvirtd expects to run (after initialize, until shutdown or an unexpected stop).
            'should_run': [name for name in self._config.domains if name in should_run],
            'domains': [self._domain_entry(name, states[name], by_id, should_run) for name in self._config.domains],
        }

    def _domain_entry(self, name, status, camera_statuses, should_run):
        stop = self._commands.unexpected_stop(name)
        since, seen = began(status, self._commands.should_run_since(name) if name in should_run else None)
        return {
            'name': name,
            'state': status.state,
            'since': utc_iso(since),
            # True: camvirtd knows only since when it has seen this state, not when it began.
            'since_seen': seen,
            'stop_detail': status.detail if status.state in VMState.STOPPED else None,
            'unexpected_stop': {'state': stop['state'], 'time': utc_iso(stop['time']),
                                'reason': stop.get('reason', STOPPED), 'detail': stop.get('detail')} if stop else None,
            'cameras': [camera_entry(c, camera_statuses[c.id]) for c in self._config.domains[name]],
            'devices': self._devices.entries(name),  # passthrough devices and whether each is on the host
        }


def last_failed(history):
    """The latest command that did not succeed, or None."""
    failed = [entry for entry in history if entry.get('status') != CommandStatus.Succeeded]
    return failed[-1] if failed else None


def began(status, expected_since):
    """(when the domain's state began, whether that is only when camvirtd first saw it). A running
    domain camvirtd has seen only since its own start ran from at least when an initialize left it
    running (the state file remembers that)."""
    if status.seen and status.state == VMState.Running and expected_since is not None \
            and expected_since <= status.since:
        return expected_since, False
    return status.since, status.seen


def camera_entry(camera, asked):
    """A camera's row in report_status(): OFFLINE unless its VM is active, whatever camd said, and
    whether camd answered ('camd': answers, not answering or not asked: its VM is off), with why not
    ('camd_problem'). camd's reply goes on as plain JSON data: a camd that sends odd values (a list as
    its state, tuple keys, NaN) must not break the status of every other camera, nor camvirt's --json."""
    status, camd, problem = asked
    status = plain(status)
    state = status.get('state', CameraState.Disabled) if status.get('vm_active') else CameraState.Disabled
    if CameraState.label(state) == 'UNKNOWN':
        state = None
    # 'reason' as camvirt shows it beside the row: why camd does not answer (the same words).
    return {'id': camera.id, 'daemon': camera.daemon_name, 'state': state,
            'label': CameraState.label(state), 'status': status, 'camd': camd, 'camd_problem': problem,
            'reason': problem}


# How camd is, in report_status()'s camera rows ('camd'): a camd answering with {'state': 0} (camera
# not initialised yet) answers; one not answering while its VM runs needs the operators' attention.
CAMD_ANSWERS = 'answers'
CAMD_NOT_ANSWERING = 'not answering'
CAMD_NOT_ASKED = 'not asked'


def with_vm_active(status):
    reply = dict(status)
    reply['vm_active'] = True
    return reply


def describe_camd(camera, answer):
    """"camd sting_cam1 at 10.2.6.165:9040 did not answer within 1 s", for the operators."""
    return 'camd {} at {}:{} {}'.format(camera.daemon_name, camera.address.host, camera.address.port, answer.problem)


def camd_not_answering(camera, answer):
    """The error report_camera_status() raises for a camd that gives no status while its VM runs: a
    builtin exception, which every Pyro4 client can rebuild (a class of ours would arrive as a
    SerializeError where rockit.camvirt is not installed)."""
    text = 'camera {}: {}'.format(camera.id, describe_camd(camera, answer))
    return TimeoutError(text) if answer.timed_out else ConnectionError(text)


# How deep a camd's reply is passed on in report_status(); deeper parts become their repr, cut short.
PLAIN_DEPTH = 8
PLAIN_TEXT = 200


def plain(value, depth=PLAIN_DEPTH):
    """`value` as JSON data: dicts with string keys, lists, strings, finite numbers, bools and None;
    anything else as a short repr."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth > 0 and isinstance(value, dict):
        return {k if isinstance(k, str) else repr(k)[:PLAIN_TEXT]: plain(v, depth - 1) for k, v in value.items()}
    if depth > 0 and isinstance(value, (list, tuple)):
        return [plain(v, depth - 1) for v in value]
    return repr(value)[:PLAIN_TEXT]
