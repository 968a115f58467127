"""The one exception base of camvirtd and camvirt.

Every error either program reports in its own words (a bad config or registry file, libvirt out of
reach, a refused command, an unreadable state file) derives from CamvirtError, so that an entry point
can tell "say this line and exit" from a bug, which keeps its traceback. Exceptions that cross the
wire to rockit's callers are not among them: those must be builtins or Pyro4.errors.
"""


class CamvirtError(Exception):
    """An error whose str() is the line (or lines) to show as it is."""
