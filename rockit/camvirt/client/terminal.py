"""How camvirt writes for people: rich, with the rockit family's theme (rockit.common.terminal's:
bright green, red, cyan and yellow), colour only on a terminal and never when NO_COLOR or --no-color
says no. Pipes and files get plain text with no trailing blanks and no wrapping."""

import os
import sys

from rich.console import Console
from rich.theme import Theme

# rockit.common.terminal's theme: markup such as [green]...[/green] means its bright variant.
ROCKIT_THEME = Theme(inherit=False, styles={
    'green': 'bright_green',
    'red': 'bright_red',
    'cyan': 'bright_cyan',
    'yellow': 'bright_yellow',
    'bold': 'bold',
    'dim': 'dim',
})

# Wide enough that no table or line of ours is wrapped when it goes to a pipe or a file.
PLAIN_WIDTH = 10000


def is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def colour_wanted(stream, no_color_flag=False, environ=None):
    """Colour on a terminal unless --no-color or NO_COLOR (any non-empty value, https://no-color.org)."""
    environ = os.environ if environ is None else environ
    return is_terminal(stream) and not no_color_flag and not environ.get('NO_COLOR')


class Output:
    """One place that prints for people: rich renderables and markup on a terminal, the same text
    plain on a pipe."""

    def __init__(self, stream=None, color=False):
        self.stream = stream or sys.stdout
        self.terminal = is_terminal(self.stream)
        self.color = color and self.terminal
        # force_terminal=False on a pipe: FORCE_COLOR or TTY_COMPATIBLE in the environment must not
        # put escape codes into what a script reads.
        self.console = Console(
            file=self.stream, theme=ROCKIT_THEME, highlight=False, emoji=False,
            force_terminal=True if self.terminal else False,
            color_system='auto' if self.color else None,
            width=None if self.terminal else PLAIN_WIDTH)

    def print(self, *renderables):
        """Markup strings and rich renderables, each on lines of its own."""
        if self.terminal:
            for renderable in renderables:
                self.console.print(renderable)
            return
        with self.console.capture() as captured:
            for renderable in renderables:
                self.console.print(renderable)
        lines = [line.rstrip() for line in captured.get().splitlines()]
        self.stream.write(''.join(line + '\n' for line in lines))
        self.stream.flush()


def escape(text):
    """Text from the wire or a config shown literally, never read as markup."""
    from rich.markup import escape as rich_escape
    return rich_escape(str(text))
