"""`camvirt status` for people: the table, the notes under it and the attention verdict (exit 0/1)."""

import io

from rockit.camvirt.client.statusview import (
    command_problems,
    needs_attention,
    status_exit,
    status_renderables,
    summary_lines,
    zone_name,
)
from rockit.camvirt.client.terminal import Output

SINCE = '2026-11-27T11:12:44+00:00'


def status(*domains, libvirt=True, command=None, last=None):
    return {'daemon': 'd', 'libvirt_uri': 'qemu:///system', 'libvirt_connected': libvirt, 'command': command,
            'last_command': last, 'domains': list(domains)}


def domain(name, state, *cameras, stop=None):
    return {'name': name, 'state': state, 'since': SINCE, 'unexpected_stop': stop,
            'cameras': [{'id': c, 'label': label} for c, label in cameras]}


def initialized(*names, status_code=0, **problems):
    return dict({'name': 'initialize', 'domains': list(names), 'status': status_code, 'time': SINCE}, **problems)


def rendered(report):
    out = io.StringIO()
    Output(out).print(*status_renderables(report))
    return out.getvalue().splitlines()


def test_all_as_intended_exits_0():
    report = status(domain('cam1', 'running', ('c1', 'IDLE')), domain('cam2', 'shut off', ('c2', 'OFFLINE')),
                    last=initialized('cam1'))
    assert needs_attention(report) == [] and status_exit(report) == 0
    lines = rendered(report)
    assert lines[0].split() == ['DOMAIN', 'VM', 'STATE', 'SINCE', '({})'.format(zone_name()), 'CAMERA', 'CAMERA',
                                'STATE']
    assert lines[1].split()[:2] == ['cam1', 'running'] and lines[1].split()[-2:] == ['c1', 'IDLE']
    assert '(' in lines[1] and 'ago)' in lines[1]  # local time with its age
    assert lines[-1].startswith('last command: initialize command completed successfully at ')


def test_a_camd_answering_state_0_is_a_camera_not_initialised_yet_not_a_problem():
    report = status(domain('cam1', 'running', ('c1', 'OFFLINE')))
    report['domains'][0]['cameras'][0].update(camd='answers', camd_problem=None)
    assert needs_attention(report) == [] and status_exit(report) == 0


def test_a_camd_not_answering_while_its_vm_runs_needs_attention():
    report = status(domain('cam1', 'running', ('c1', 'OFFLINE')))
    problem = 'camd sting_cam1 at 10.2.6.165:9040 did not answer within 1 s'
    report['domains'][0]['cameras'][0].update(camd='not answering', camd_problem=problem)
    assert needs_attention(report) == [
        'camera c1: camd sting_cam1 at 10.2.6.165:9040 did not answer within 1 s while its VM cam1 runs']
    assert status_exit(report) == 1


def test_camera_offline_while_its_vm_runs():
    """From a camvirtd that does not say how its camd is ('camd'): OFFLINE is what there is."""
    report = status(domain('cam1', 'running', ('c1', 'OFFLINE')))
    assert needs_attention(report) == ['camera c1 is offline while its VM cam1 runs']
    assert status_exit(report) == 1
    assert rendered(report)[-1] == 'needs attention: camera c1 is offline while its VM cam1 runs'


def test_vm_that_should_run_is_off():
    report = status(domain('cam1', 'shut off', ('c1', 'OFFLINE')), last=initialized('cam1'))
    assert needs_attention(report) == ['domain cam1 should run but is shut off']
    stopped = status(domain('cam1', 'crashed', ('c1', 'OFFLINE'), stop={'state': 'crashed', 'time': SINCE}))
    assert needs_attention(stopped) == ['domain cam1 is crashed']
    assert any(line.startswith('domain cam1 stopped unexpectedly at ') for line in rendered(stopped))
    off = status(domain('cam1', 'shut off', ('c1', 'OFFLINE'), stop={'state': 'shut off', 'time': SINCE}))
    assert needs_attention(off) == ['domain cam1 should run but is shut off (stopped unexpectedly)']


def test_libvirt_unreachable():
    report = status(domain('cam1', 'unknown', ('c1', 'OFFLINE')), libvirt=False, last=initialized('cam1'))
    assert needs_attention(report) == ['libvirt at qemu:///system is unreachable']
    assert rendered(report)[0] == 'libvirt at qemu:///system is unreachable'


def test_a_command_in_progress_moves_vms_through_passing_states():
    report = status(domain('cam1', 'running', ('c1', 'OFFLINE')), command='initialize')
    assert needs_attention(report) == []
    assert rendered(report)[0] == 'initialize in progress'


def test_failed_last_command_with_problems_as_list_or_string():
    as_list = initialized('cam1', status_code=1, problems=['camera c1 did not answer', 'x'])
    as_string = initialized('cam1', status_code=1, message='camera c1 did not answer; x')
    for last in (as_list, as_string):
        assert command_problems(last) == ['camera c1 did not answer', 'x']
        report = status(domain('cam1', 'running', ('c1', 'IDLE')), last=last)
        assert needs_attention(report) == ['the last command (initialize) failed']
        lines = rendered(report)
        assert lines[-4:-1] == [lines[-4], '  camera c1 did not answer', '  x']
        assert lines[-4].startswith('last command: initialize command failed at ')
    assert command_problems(None) == [] and command_problems(initialized('a', message='')) == []


def test_text_from_the_wire_is_not_markup():
    report = status(domain('[red]cam1', 'running', ('[bold]c1', 'IDLE')))
    assert '[red]cam1' in rendered(report)[1] and '[bold]c1' in rendered(report)[1]


def test_summary_lines_leave_ages_out():
    report = status(domain('cam1', 'running', ('c1', 'IDLE'), ('c2', 'OFFLINE')), last=initialized('cam1'))
    assert summary_lines(report) == ['cam1: VM running; camera c1 IDLE, camera c2 OFFLINE',
                                     'last command: initialize command completed successfully']


def styles(report):
    """{text: style} of the table's coloured cells."""
    from rockit.camvirt.client.statusview import domain_table
    table = domain_table(report)
    found = {}
    for column in table.columns:
        for cell in column._cells:
            if cell.startswith('['):
                style, text = cell[1:].split(']', 1)
                found[text.rsplit('[/', 1)[0]] = style
    return found


def test_colour_says_what_needs_attention_not_the_state():
    daytime = status(domain('cam1', 'shut off', ('c1', 'OFFLINE')), last=dict(initialized('cam1'), name='shutdown'))
    assert styles(daytime) == {'shut off': 'dim', 'OFFLINE': 'dim'}
    night = status(domain('cam1', 'running', ('c1', 'IDLE')), domain('cam2', 'shut off', ('c2', 'OFFLINE')),
                   last=initialized('cam1', 'cam2'))
    cells = styles(night)
    assert cells['running'] == 'green' and cells['IDLE'] == 'green'
    assert cells['shut off'] == 'red'  # should run
    broken = status(domain('cam1', 'running', ('c1', 'OFFLINE')))
    assert styles(broken) == {'running': 'green', 'OFFLINE': 'red'}


def test_since_is_marked_seen_when_only_camvirtds_first_look_is_known():
    seen = dict(domain('cam1', 'shut off', ('c1', 'OFFLINE')), since_seen=True)
    began = domain('cam2', 'running', ('c2', 'IDLE'))
    lines = rendered(status(seen, began))
    assert lines[1].split()[3] == 'seen' and lines[2].split()[2] != 'seen'


def test_libvirt_unreachable_says_libvirts_reason_and_the_stop_detail_shows():
    report = dict(status(domain('cam1', 'unknown', ('c1', 'OFFLINE'))), libvirt_connected=False,
                  libvirt_error='Failed to connect socket to /run/libvirt/virtqemud-sock: No such file or directory')
    assert needs_attention(report) == ['libvirt at qemu:///system is unreachable: Failed to connect socket to '
                                       '/run/libvirt/virtqemud-sock: No such file or directory']
    off = dict(domain('cam1', 'shut off', ('c1', 'OFFLINE')), stop_detail='destroyed (powered off through libvirt)')
    assert needs_attention(status(off, last=initialized('cam1'))) == [
        'domain cam1 should run but is shut off: destroyed (powered off through libvirt)']


def test_an_offline_camera_says_how_its_camd_failed():
    report = status(domain('cam1', 'running', ('c1', 'OFFLINE')))
    report['domains'][0]['cameras'][0]['reason'] = 'connection refused'
    assert needs_attention(report) == ['camera c1 is offline while its VM cam1 runs (its camd: connection refused)']
