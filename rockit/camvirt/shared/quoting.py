"""The one way camvirtd and camvirt show a value they did not choose: one line, printable, short.

Anyone who reaches camvirtd's port chooses the domain names, camera ids and other values its log
lines quote, and anyone who edits a config or registry file the values its problems quote. A newline
in them would forge a line, a megabyte would make a megabyte line."""

import reprlib

# Far above any real domain name or camera id, short enough for a journal line.
MAX_CLIENT_TEXT = 80



def _repr_cut_at(limit):
    cut = reprlib.Repr()
    cut.maxstring = cut.maxother = limit
    cut.maxlist = cut.maxtuple = cut.maxset = cut.maxdict = 4
    cut.maxlevel = 2
    return cut


_quoting = {MAX_CLIENT_TEXT: _repr_cut_at(MAX_CLIENT_TEXT)}


def quote(value, limit=MAX_CLIENT_TEXT):
    """repr() of a value we did not choose, cut to about `limit` characters. repr escapes newlines and
    every other unprintable character, and reprlib cuts long strings and lists before formatting
    them, so the cost stays small whatever was sent."""
    cut = _quoting.get(limit) or _quoting.setdefault(limit, _repr_cut_at(limit))
    return one_line(cut.repr(value), limit=4 * limit)


def one_line(text, limit=4 * MAX_CLIENT_TEXT):
    """`text` with any unprintable character escaped and cut to `limit` characters: a last guard for
    a line that mixes our words with quoted values."""
    if len(text) > limit:
        text = text[:limit] + '...'
    if text.isprintable():
        return text
    return ''.join(c if c.isprintable() else c.encode('unicode_escape').decode('ascii') for c in text)
