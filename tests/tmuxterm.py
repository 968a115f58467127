"""A real terminal for tests: a private tmux server (its own socket in a temp folder) running one
command in a pane of a fixed size, whose screen the test reads back."""

import os
import shutil
import subprocess

from testworld.support import wait_until

TMUX = shutil.which('tmux')


class TmuxTerminal:
    def __init__(self, folder, command, env, width=160, height=40):
        self._socket = os.path.join(str(folder), 'tmux.sock')
        self._status_file = os.path.join(str(folder), 'exit-status')
        conf = os.path.join(str(folder), 'tmux.conf')
        with open(conf, 'w') as f:
            # The pane stays after the command ends, so that its last screen can be read.
            f.write('set -g remain-on-exit on\nset -g history-limit 1000\n')
        # tmux may mark a pane dead before it has reaped its process, and then not say its exit status:
        # a shell around the command writes it to a file. The shell's own Ctrl-C handler is a no-op
        # (an ignored SIGINT would be inherited by the command), so that it lives to write it.
        wrapped = ['sh', '-c', 'trap : INT; "$@"; echo $? > {}'.format(_quote(self._status_file)), 'sh'] + \
            [str(arg) for arg in command]
        # The server starts from this call and so takes `env` as its environment, and the pane's.
        self._tmux('-f', conf, 'new-session', '-d', '-s', 'test', '-x', str(width), '-y', str(height),
                   ' '.join(_quote(arg) for arg in wrapped), env=env)

    def _tmux(self, *args, env=None):
        return subprocess.run([TMUX, '-S', self._socket] + list(args), env=env, capture_output=True,
                              text=True, check=True, timeout=20).stdout

    def screen(self, escapes=False):
        """The screen as text, from the start of its history (tmux scrolls one line up to say that the
        command ended); with escapes, with its colours and attributes as SGR codes."""
        return self._tmux('capture-pane', '-p', '-S', '-', '-t', 'test', *(['-e'] if escapes else []))

    def wait_for(self, predicate, seconds=30):
        """The first screen for which predicate(screen) holds, or None at the deadline."""
        found = []

        def look():
            text = self.screen()
            if predicate(text):
                found.append(text)
                return True
            return False
        wait_until(look, seconds, interval=0.1)
        return found[0] if found else None

    def send_keys(self, *keys):
        self._tmux('send-keys', '-t', 'test', *keys)

    def exit_status(self):
        """The command's exit status once it ended, else None."""
        try:
            with open(self._status_file) as f:
                text = f.read()
        except FileNotFoundError:
            return None
        return int(text) if text.endswith('\n') else None

    def wait_for_exit(self, seconds=60):
        """The command's exit status, or None if it still runs at the deadline."""
        wait_until(lambda: self.exit_status() is not None, seconds, interval=0.1)
        return self.exit_status()

    def close(self):
        subprocess.run([TMUX, '-S', self._socket, 'kill-server'], capture_output=True, timeout=20)


def _quote(arg):
    return "'" + str(arg).replace("'", "'\\''") + "'"
