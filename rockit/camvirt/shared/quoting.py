"""Client-supplied values made safe for a log line: one line, printable, short.

Anyone who reaches camvirtd's port chooses the domain names, camera ids and other values its log
lines quote. A newline in them would forge a line, a megabyte would make a megabyte line."""

import reprlib

# Far above any real domain name or camera id, short enough for a journal line.
MAX_CLIENT_TEXT = 80

_quoting = reprlib.Repr()
_quoting.maxstring = MAX_CLIENT_TEXT
_quoting.maxother = MAX_CLIENT_TEXT
_quoting.maxlist = _quoting.maxtuple = _quoting.maxset = _quoting.maxdict = 4
_quoting.maxlevel = 2


def quote(value):
    """repr() of a client value cut to about MAX_CLIENT_TEXT characters. repr escapes newlines and
    every other unprintable character, and reprlib cuts long strings and lists before formatting
    them, so the cost stays small whatever was sent."""
    text = _quoting.repr(value)
    return one_line(text)


def one_line(text, limit=4 * MAX_CLIENT_TEXT):
    """`text` with any unprintable character escaped and cut to `limit` characters: a last guard for
    a line that mixes our words with quoted values."""
    if len(text) > limit:
        text = text[:limit] + '...'
    if text.isprintable():
        return text
    return ''.join(c if c.isprintable() else c.encode('unicode_escape').decode('ascii') for c in text)
