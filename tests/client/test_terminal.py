"""Colours as an operator sees them: camvirt in a real terminal (tmux, its screen read back with its
attributes) uses the rockit theme's bright colours; NO_COLOR, --no-color, --json and pipes get none."""

import os
import re
import subprocess

import pytest

from testworld.support import REPO
from rockit.camvirt.client.terminal import Output, colour_wanted
from tmuxterm import TMUX, TmuxTerminal

CAMVIRT = os.path.join(REPO, 'camvirt')
needs_tmux = pytest.mark.skipif(TMUX is None, reason='tmux is not installed (make apt)')
# SGR codes that set a foreground or background colour (bold and resets are not colours).
COLOUR_CODE = re.compile(r'\x1b\[(?:[0-9;]*;)?(?:3[0-7]|9[0-7]|4[0-7]|10[0-7]|38;5;\d+|38;2;[\d;]+)m')


def screen_after(tmp_path, command, env, escapes=True):
    """The screen camvirt leaves in a 160x40 terminal, once it has ended, and its exit status."""
    term = TmuxTerminal(tmp_path, [CAMVIRT] + command, env)
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
    assert '\x1b[92mrunning' in running and '\x1b[92mIDLE' in running  # bright green
    assert '\x1b[91mshut off' in off and '\x1b[91mOFFLINE' in off  # bright red
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
