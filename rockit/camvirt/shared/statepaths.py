"""Where camvirtd keeps its state file: the daemon writes it there, and camvirt config says where.
(What the file holds and how it is written are the daemon's: daemon/statefile.py.)"""

import os

STATE_ENV = 'STATE_DIRECTORY'  # what systemd's StateDirectory=camvirtd sets (/var/lib/camvirtd)
SYSTEM_STATE_DIR = '/var/lib/camvirtd'


def state_folder(option=None, environ=None):
    """Where state files live: --state-dir, else $STATE_DIRECTORY (systemd's StateDirectory=; the
    first entry when it lists several), else /var/lib/camvirtd for root (as the service, so that a
    run by hand of the same config shares its memory) and $XDG_STATE_HOME/camvirtd (default
    ~/.local/state/camvirtd) for anyone else."""
    environ = os.environ if environ is None else environ
    if option:
        return option
    listed = [p for p in environ.get(STATE_ENV, '').split(':') if p]
    if listed:
        return listed[0]
    if os.geteuid() == 0:
        return SYSTEM_STATE_DIR
    base = environ.get('XDG_STATE_HOME') or os.path.join(os.path.expanduser('~'), '.local', 'state')
    return os.path.join(base, 'camvirtd')


def state_path(folder, config_path):
    """<folder>/<config file stem>.json: one state file per config."""
    stem = os.path.splitext(os.path.basename(config_path))[0]
    return os.path.join(folder, stem + '.json')
