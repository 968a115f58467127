"""Which config camvirt uses: CAMVIRTD_CONFIG_PATH, else the only one in /etc/camvirtd, else the only one
whose camvirtd@ unit is enabled on this host."""

import glob
import os

from rockit.camvirt.shared.config import ConfigError, load_config
from rockit.camvirt.shared.registry import Registry, RegistryError, load_registry

CONFIG_DIR = '/etc/camvirtd'
CONFIG_ENV = 'CAMVIRTD_CONFIG_PATH'
# Where `systemctl enable camvirtd@<config>` links the instance.
SYSTEMD_UNIT_DIR = '/etc/systemd/system'


class ClientError(Exception):
    """A problem the client reports in one line and exits 1 for."""


def enabled_instances(unit_dir=SYSTEMD_UNIT_DIR):
    """The configs whose camvirtd@<config>.service is enabled on this host (systemctl enable makes a
    link in a *.wants folder), by name."""
    links = glob.glob(os.path.join(unit_dir, '*.wants', 'camvirtd@*.service'))
    return {os.path.basename(link)[len('camvirtd@'):-len('.service')] for link in links}


def find_config_path(environ=None, config_dir=CONFIG_DIR, unit_dir=SYSTEMD_UNIT_DIR):
    """CAMVIRTD_CONFIG_PATH, else the only config in /etc/camvirtd, else the only one whose service is
    enabled here (a data package installs each generation's configs side by side)."""
    return choose_config(environ, config_dir, unit_dir)[0]


def choose_config(environ=None, config_dir=CONFIG_DIR, unit_dir=SYSTEMD_UNIT_DIR):
    """(the config's path, why that one: what `camvirt config` says first)."""
    environ = os.environ if environ is None else environ
    if environ.get(CONFIG_ENV):
        listed = [p for p in environ[CONFIG_ENV].split(':') if p]
        if len(listed) > 1:
            raise ClientError('{} lists {} configs: only `camvirt status --all` takes a list; set it to one '
                              'file for this command'.format(CONFIG_ENV, len(listed)))
        if listed:
            return listed[0], 'from {}'.format(CONFIG_ENV)
    found = sorted(glob.glob(os.path.join(config_dir, '*.json')))
    if not found:
        raise ClientError('no config found: set {} or install one in {}'.format(CONFIG_ENV, config_dir))
    if len(found) == 1:
        return found[0], 'the only config in {}'.format(config_dir)
    enabled = enabled_instances(unit_dir)
    chosen = [path for path in found if os.path.splitext(os.path.basename(path))[0] in enabled]
    if len(chosen) == 1:
        return chosen[0], 'the only one of {} configs in {} whose camvirtd@ unit is enabled'.format(
            len(found), config_dir)
    raise ClientError('several configs in {} ({}) and {} of them enabled as camvirtd@<config>: set {} to '
                      'choose one'.format(config_dir, ', '.join(os.path.basename(p) for p in found),
                                          len(chosen) or 'none', CONFIG_ENV))


def load_client_config():
    """The Config, with `chosen_because` (why this file); ClientError listing every problem of the
    config and the registry together."""
    path, why = choose_config()
    try:
        registry = load_registry()
    except RegistryError as e:
        problems = list(e.problems)
        try:
            load_config(path, Registry())  # the config's own problems too, all at once
        except ConfigError as config_error:
            problems += [line for line in config_error.problems if 'unknown daemon name' not in line
                         and 'unknown machine name' not in line]
        raise ClientError('\n'.join(problems)) from None
    try:
        config = load_config(path, registry)
    except ConfigError as e:
        raise ClientError(str(e)) from None
    config.chosen_because = why
    return config
