"""Colours as an operator sees them: camvirt in a real terminal (tmux, its screen read back with its
attributes) uses the rockit theme's bright colours; NO_COLOR, --no-color, --json and pipes get none."""

import json
import os
import re
import subprocess

import pytest
from tmuxterm import TMUX, TmuxTerminal

from rockit.camvirt.client.terminal import Output, colour_wanted
from testworld.simcamd import ABSENT
from testworld.support import REPO

CAMVIRT = os.path.join(REPO, 'camvirt')
needs_tmux = pytest.mark.skipif(TMUX is None, reason='tmux is not installed (make apt)')
# SGR codes that set a foreground or background colour (bold and resets are not colours).
COLOUR_CODE = re.compile(r'\x1b\[(?:[0-9;]*;)?(?:3[0-7]|9[0-7]|4[0-7]|10[0-7]|38;5;\d+|38;2;[\d;]+)m')


def screen_after(tmp_path, command, env, escapes=True, width=160):
    """The screen camvirt leaves in a `width`x40 terminal, once it has ended, and its exit status."""
    term = TmuxTerminal(tmp_path, [CAMVIRT] + command, env, width=width)
    try:
        status = term.wait_for_exit()
        return term.screen(escapes=escapes), status
    finally:
        term.close()


def status_env(world, tmp_path, **extra):
    env = world.client_env(tmp_path)
    env.pop('NO_COLOR', None)
    env.update(extra)
    return env


@needs_tmux
def test_status_in_a_terminal_is_in_the_rockit_colours(make_world, tmp_path):
    world = make_world(domains=2)
    assert world.call('initialize', [world.domain_names[0]]) == 0
    screen, status = screen_after(tmp_path, ['status'], status_env(world, tmp_path))
    assert status == 0, screen
    running = next(line for line in screen.splitlines() if world.domain_names[0] in line)
    off = next(line for line in screen.splitlines() if world.domain_names[1] in line)
    assert '\x1b[92mrunning' in running and '\x1b[92mIDLE' in running  # bright green: healthy
    # Off because nobody asked for it to run: muted, not an alarm.
    assert '\x1b[2mshut off' in off and '\x1b[2mOFFLINE' in off and '\x1b[91m' not in screen
    assert '\x1b[1mDOMAIN' in screen


@needs_tmux
@pytest.mark.parametrize('how', ['NO_COLOR', '--no-color', '--json'])
def test_no_colour_when_asked_or_for_json(make_world, tmp_path, how):
    world = make_world(domains=1)
    env = status_env(world, tmp_path, **({'NO_COLOR': '1'} if how == 'NO_COLOR' else {}))
    command = ['status'] + ([how] if how.startswith('--') else [])
    screen, status = screen_after(tmp_path, command, env)
    assert status == 0, screen
    assert world.domain_names[0] in screen and not COLOUR_CODE.search(screen)


def test_pipes_get_plain_text_even_with_force_color(make_world, tmp_path):
    world = make_world(domains=1)
    env = status_env(world, tmp_path, FORCE_COLOR='1', TTY_COMPATIBLE='1')
    for command in (['status'], ['status', '--all'], ['init']):
        result = subprocess.run([CAMVIRT] + command, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert '\x1b' not in result.stdout, command
        assert all(line == line.rstrip() for line in result.stdout.splitlines())


def test_colour_wanted_only_on_a_terminal_without_no_color():
    with open(os.devnull, 'w') as devnull:
        assert not colour_wanted(devnull, False, {})
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, 'w') as tty:
            assert colour_wanted(tty, False, {})
            assert not colour_wanted(tty, True, {})
            assert not colour_wanted(tty, False, {'NO_COLOR': '1'})
            assert colour_wanted(tty, False, {'NO_COLOR': ''})  # no-color.org: only a non-empty value
    finally:
        os.close(master)


def test_plain_output_is_not_wrapped_or_marked_up(tmp_path):
    path = tmp_path / 'out.txt'
    with open(path, 'w') as stream:
        Output(stream, color=True).print('[red]x[/red] ' + 'word ' * 100)
    text = path.read_text()
    assert text == 'x ' + ('word ' * 100).rstrip() + '\n'


# The screens the operator reads, at the widths of a laptop's half screen and a full one: every row of a
# table on one line (none cut short with an ellipsis), nothing wider than the terminal.
WIDTHS = [80, 120]


def assert_fits(screen, width):
    lines = screen.splitlines()
    assert all(len(line) <= width for line in lines), screen
    assert '\u2026' not in screen, screen  # rich's ellipsis: a cell was cut


@needs_tmux
@pytest.mark.parametrize('width', WIDTHS)
def test_daytime_status_fits_and_is_not_red(make_world, tmp_path, width):
    world = make_world(domains=2)
    assert world.call('initialize') == 0 and world.call('shutdown') == 0
    screen, status = screen_after(tmp_path, ['status'], status_env(world, tmp_path), escapes=False, width=width)
    assert status == 0, screen
    assert_fits(screen, width)
    lines = screen.splitlines()
    assert lines[0].split()[:4] == ['DOMAIN', 'VM', 'STATE', 'SINCE']
    assert all(len(line.split()) >= 5 for line in lines[1:3])  # each domain's row on one line
    (tmp_path / 'again').mkdir()
    coloured, _ = screen_after(tmp_path / 'again', ['status'], status_env(world, tmp_path), width=width)
    assert '\x1b[91m' not in coloured  # nothing needs attention: no red anywhere


@needs_tmux
@pytest.mark.parametrize('width', WIDTHS)
def test_fleet_view_fits_with_the_reason_under_its_row(make_world, tmp_path, width):
    world = make_world(domains=2)
    assert world.call('initialize') == 0
    env = status_env(world, tmp_path)
    far = tmp_path / 'sting_das2_with_a_long_name.json'
    far.write_text(json.dumps(dict(world.data, daemon='camd_c1a')))  # something else answers there
    env['CAMVIRTD_CONFIG_PATH'] = ':'.join([env['CAMVIRTD_CONFIG_PATH'], str(far)])
    screen, status = screen_after(tmp_path, ['status', '--all'], env, escapes=False, width=width)
    assert status == 1, screen
    lines = screen.splitlines()
    assert lines[0].split() == ['HOST', 'DOMAIN', 'VM', 'STATE', 'CAMERA', 'CAMERA', 'STATE']
    assert [line.split()[:3] for line in lines[1:3]] == [['camvirtd', name, 'running'] for name in world.domain_names]
    assert lines[3].split() == ['sting_das2_with_a_long_name', 'not', 'camvirtd']
    assert lines[4].startswith('  something else answers at 127.0.0.1:')
    assert_fits(screen, width)


@needs_tmux
@pytest.mark.parametrize('width', WIDTHS)
def test_history_and_init_fit(make_world, tmp_path, width):
    world = make_world(domains=2, behaviours={'c2a': ABSENT}, initialize_timeout=1)
    env = status_env(world, tmp_path)
    screen, status = screen_after(tmp_path, ['init'], env, escapes=False, width=width)
    assert status == 1 and screen.splitlines()[0].startswith('initialize '), screen
    assert_fits(screen, width)
    (tmp_path / 'history').mkdir()
    screen, status = screen_after(tmp_path / 'history', ['history'], env, escapes=False, width=width)
    assert status == 1, screen  # the newest command failed
    lines = screen.splitlines()
    assert lines[0] == 'commands, oldest first (times UTC)'
    assert lines[2].startswith('    by LocalHost at 127.0.0.1, took ') and lines[2].endswith(': failed')
    assert_fits(screen, width)


@needs_tmux
@pytest.mark.parametrize('width', WIDTHS)
def test_config_screen_fits(make_world, tmp_path, width):
    world = make_world(domains=1)
    screen, status = screen_after(tmp_path, ['config'], status_env(world, tmp_path), escapes=False, width=width)
    assert status == 0, screen
    assert screen.splitlines()[0].startswith('config: ')
    assert all(len(line) <= width for line in screen.splitlines())
