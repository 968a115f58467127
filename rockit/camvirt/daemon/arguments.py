"""Checks of the arguments a caller passes to camvirtd's wire methods, before anything acts on them.

A Pyro call can carry any serpent value in any argument; the methods take only these shapes:
  domains: None (every domain), a domain name, or a non-empty list of domain names
  force:   None (the config's force_shutdown) or a bool: bool('false') is True, so no coercion
  camera_id: a string
Each check returns None when the value is fine, else one line saying what is wrong, with the value
quoted for a log line (logtext.quote)."""

from ..shared.quoting import quote

# serpent sends a Python list as a list and a tuple as a tuple: both are a list of names here.
NAME_LISTS = (list, tuple)


def domains_problem(domains):
    """None when `domains` selects domains by name, else why not."""
    if domains is None:
        return None
    if isinstance(domains, str):
        return None if domains else 'domains: an empty name'
    if not isinstance(domains, NAME_LISTS):
        return 'domains: {} is not a name or a list of names'.format(quote(domains))
    if not domains:
        return 'domains: an empty list selects nothing (None means every domain)'
    for name in domains:
        if not isinstance(name, str) or not name:
            return 'domains: {} is not a domain name'.format(quote(name))
    return None


def force_problem(force):
    """None when `force` is None, True or False, else why not."""
    if force is None or isinstance(force, bool):
        return None
    return 'force: {} is not true, false or None'.format(quote(force))


def command_problem(domains, force=None):
    """The first problem of a command's arguments, or None."""
    return domains_problem(domains) or force_problem(force)


def is_camera_id(value):
    return isinstance(value, str)
