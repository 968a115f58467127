"""The queries' pure parts: a camd's reply as plain JSON data, and a camera's row whatever camd says."""

import json

import pytest

from rockit.camvirt.daemon.queries import CAMD_ANSWERS, began, camera_entry, plain
from rockit.camvirt.virt.domains import DomainStatus


class Camera:
    id = 'cam1'
    daemon_name = 'superwasp_cam1'


@pytest.mark.parametrize('reply,label', [
    ({'state': 2, 'vm_active': True}, 'IDLE'),
    ({'state': [1, 2], 'vm_active': True}, 'UNKNOWN'),  # unhashable: once a TypeError for every camera
    ({'state': {'a': 1}, 'vm_active': True}, 'UNKNOWN'),
    ({'state': True, 'vm_active': True}, 'UNKNOWN'),
    ({'state': 99, 'vm_active': True}, 'UNKNOWN'),
    ({'state': 4, 'vm_active': False}, 'OFFLINE'),
])
def test_a_cameras_row_never_fails_on_what_camd_says(reply, label):
    entry = camera_entry(Camera, (reply, CAMD_ANSWERS, None))
    assert entry['label'] == label and entry['camd'] == CAMD_ANSWERS
    json.dumps(entry, allow_nan=False)  # what camvirt status --json prints


def test_plain_makes_any_reply_json_data():
    odd = {(1, 2): {1, 2}, 'nan': float('nan'), 'deep': [[[[[[[[[[1]]]]]]]]]], 'ok': [1, 'a', None, 2.5]}
    value = plain(odd)
    assert value['ok'] == [1, 'a', None, 2.5]
    assert value['(1, 2)'] == '{1, 2}' and value['nan'] == 'nan'
    json.dumps(value, allow_nan=False)


def test_since_is_when_the_state_began_else_marked_seen():
    # An event told when it began: that time, not marked.
    assert began(DomainStatus('running', 500.0, False), 100.0) == (500.0, False)
    # Found running at camvirtd's first look (t=500), expected to run since an initialize at t=100:
    # it has run since then at least (the state file knows it).
    assert began(DomainStatus('running', 500.0, True), 100.0) == (100.0, False)
    # Found shut off at the first look: since when is unknown, so it is marked as seen.
    assert began(DomainStatus('shut off', 500.0, True), None) == (500.0, True)
