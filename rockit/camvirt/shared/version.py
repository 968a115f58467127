"""The one version of camvirtd: the UTC time of the commit it was built from, as YYYYMMDDHHMMSS.

`make rpm` and `make install` compute it (`git log -1`, or VERSION=... given) and write it into the
installed package as _version.py; the RPM's Version is the same string. A git clone without
_version.py asks git; a copy with neither says 0+unknown rather than guess.
"""

import os
import subprocess

UNKNOWN = '0+unknown'
_FOLDER = os.path.dirname(os.path.abspath(__file__))
# git may be slow on a busy machine, but a --version must never hang.
GIT_TIMEOUT = 5


def version_from_git(folder=_FOLDER):
    """The UTC commit time of HEAD in the clone holding `folder`, or None outside a clone."""
    try:
        result = subprocess.run(
            ['git', '-C', folder, 'log', '-1', '--format=%cd', '--date=format-local:%Y%m%d%H%M%S'],
            env=dict(os.environ, TZ='UTC'), capture_output=True, text=True, timeout=GIT_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = result.stdout.strip()
    return value if result.returncode == 0 and value.isdigit() else None


def current_version():
    try:
        from .._version import VERSION
        return VERSION
    except ImportError:
        return version_from_git() or UNKNOWN
