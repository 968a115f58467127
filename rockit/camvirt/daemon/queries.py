"""The queries: one camera's status for the dashboard, and the whole host's for `camvirt status`."""

import math

from .arguments import is_camera_id
from ..shared.constants import OFFLINE_CAMERA_STATUS, CameraState, VMState
from .crashwatch import STOPPED
from ..shared.quoting import quote
from ..shared.times import utc_iso


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
        """camd's report_status() with 'vm_active': True, or the offline reply: when its VM is off, a
        command acts on its domain (as the daemon camvirtd replaces did, for the dashboard), or camd
        does not answer within camera_timeout."""
        camera = self._config.cameras.get(camera_id) if is_camera_id(camera_id) else None
        if camera is None:
            raise unknown_camera(camera_id, self._config.cameras)
        if camera.domain in self._commands.admission.busy_domains():
            return dict(OFFLINE_CAMERA_STATUS)
        return self._camera_status(camera, self._hypervisor.state(camera.domain))

    def _camera_status(self, camera, vm_state):
        if vm_state not in VMState.PROBED:
            return dict(OFFLINE_CAMERA_STATUS)
        status = self._probe.status(camera.address)
        if status is None:
            return dict(OFFLINE_CAMERA_STATUS)
        reply = dict(status)
        reply['vm_active'] = True
        return reply

    def report(self):
        """Every domain's state since when, each camera's status, the running and last command. Here
        cameras are asked also while a command acts on them: its progress is what camvirt shows."""
        states = self._hypervisor.states()
        cameras = list(self._config.cameras.values())
        statuses = self._workers.run_parallel(lambda c: self._camera_status(c, states[c.domain].state), cameras)
        by_id = {c.id: s if isinstance(s, dict) else dict(OFFLINE_CAMERA_STATUS) for c, s in zip(cameras, statuses)}
        running = self._commands.admission.running
        should_run = set(self._commands.crashes.expected_running())
        return {
            'daemon': self._config.daemon_name,
            'libvirt_uri': self._hypervisor.uri,
            'libvirt_connected': self._hypervisor.connected,
            'command': running.name if running else None,
            'last_command': self._commands.last_command,
            # What camvirtd expects to run (after initialize, until shutdown or an unexpected stop).
            'should_run': [name for name in self._config.domains if name in should_run],
            'domains': [self._domain_entry(name, states[name], by_id) for name in self._config.domains],
        }

    def _domain_entry(self, name, status, camera_statuses):
        stop = self._commands.crashes.unexpected_stop(name)
        return {
            'name': name,
            'state': status.state,
            'since': utc_iso(status.since),
            'unexpected_stop': {'state': stop['state'], 'time': utc_iso(stop['time']),
                                'reason': stop.get('reason', STOPPED)} if stop else None,
            'cameras': [camera_entry(c, camera_statuses[c.id]) for c in self._config.domains[name]],
            'devices': self._devices.entries(name),  # passthrough devices and whether each is on the host
        }


def camera_entry(camera, status):
    """A camera's row in report_status(): OFFLINE unless its VM is active, whatever camd said. camd's
    reply goes on as plain JSON data: a camd that sends odd values (a list as its state, tuple keys,
    NaN) must not break the status of every other camera, nor camvirt's --json."""
    status = plain(status)
    state = status.get('state', CameraState.Disabled) if status.get('vm_active') else CameraState.Disabled
    if CameraState.label(state) == 'UNKNOWN':
        state = None
    return {'id': camera.id, 'daemon': camera.daemon_name, 'state': state,
            'label': CameraState.label(state), 'status': status}


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
