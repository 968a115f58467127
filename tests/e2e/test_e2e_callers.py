"""A caller is the address camvirtd's server accepted, through the real ./camvirtd: a command from a
machine that is not a control machine never runs, whether its caller waits for the reply, sends it
oneway, or resets the connection before the call is served (then the socket cannot say who it was)."""

import pytest

from testworld import attacks

from .e2e_world import wait_until

ATTEMPTS = 5  # each a race between the reset and the worker that serves the call


def unchanged(world, before):
    after = world.report_status()
    return after['last_command'] == before['last_command'] and \
        [d['state'] for d in after['domains']] == [d['state'] for d in before['domains']]


@pytest.mark.parametrize('oneway', [False, True], ids=['plain', 'oneway'])
def test_commands_from_a_non_control_address_followed_by_a_reset_never_run(make_process_world, oneway):
    world = make_process_world().start()
    with world.proxy(timeout=30) as proxy:
        assert proxy.initialize(['cam1']) == 0  # cam1 running, cam2 off: both commands would change one
    before = world.report_status()
    entry = world.daemons['e2e_camvirt']
    for _ in range(ATTEMPTS):
        for method, args in (('shutdown', [None, True]), ('initialize', [None])):
            attacks.call_and_reset(entry['host'], entry['port'], entry['object_id'], method, args, oneway=oneway)
    # Every attempt is refused (or never read at all): none is requested, nothing changes.
    refused = r'refused (initialize|shutdown|connection) from 127\.0\.0\.2: '
    assert world.camvirtd.out.wait_for(refused, 10), world.camvirtd.describe()
    with world.proxy() as proxy:
        assert proxy.report_camera_status('cam1')['vm_active'] is True  # the server goes on
    assert unchanged(world, before)
    assert not wait_until(lambda: 'requested by' in world.camvirtd.out.text().split('initialize (cam1) succeeded')[-1],
                          3), world.camvirtd.out.text()
    assert unchanged(world, before)
    assert world.domstate('cam1') == 'running' and world.domstate('cam2') == 'shut off'
