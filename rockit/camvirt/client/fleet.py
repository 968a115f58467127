"""`camvirt status --all`: a row per camera of every config, one row for a config that cannot be shown."""

import concurrent.futures
import glob
import json
import os
import sys

import Pyro4.errors
from rich.table import Table

from rockit.camvirt.client.configfind import CONFIG_DIR, CONFIG_ENV, ClientError
from rockit.camvirt.client.daemoncall import STATUS_TIMEOUT, call_daemon
from rockit.camvirt.client.reach import short_reason
from rockit.camvirt.client.statusview import (CAMERA_STATE_STYLES, EXIT_NEEDS_ATTENTION, VM_STATE_STYLES,
                                              needs_attention, styled)
from rockit.camvirt.client.terminal import Output, escape
from rockit.camvirt.config import ConfigError, load_config
from rockit.camvirt.hostdevs import absent_summary
from rockit.camvirt.registry import RegistryError, load_registry

# Configs shown at most (an observatory has a handful), queried this many at once.
MAX_FLEET = 64
FLEET_WORKERS = 16


def fleet_config_paths(environ=None, config_dir=CONFIG_DIR):
    environ = os.environ if environ is None else environ
    if environ.get(CONFIG_ENV):
        paths = [p for p in environ[CONFIG_ENV].split(':') if p]
    else:
        paths = sorted(glob.glob(os.path.join(config_dir, '*.json')))
    if len(paths) > MAX_FLEET:  # a thread and a row each: bounded
        raise ClientError('{} configs to show; `status --all` shows at most {}'.format(len(paths), MAX_FLEET))
    return paths


FLEET_KEYS = ('host', 'domain', 'vm_state', 'camera', 'camera_state', 'devices')


def fleet_host(path):
    """(status rows (host, domain, VM state, camera, camera state, devices), needs attention) for one
    config; a config that cannot be read or a camvirtd that cannot be reached is one row saying so."""
    name = os.path.splitext(os.path.basename(path))[0][:64]
    try:
        config = load_config(path, load_registry())
    except (ConfigError, RegistryError) as e:
        return [(name, 'bad config: ' + first_problem(e), '', '', '', '')], True
    try:
        status = call_daemon(config, 'report_status', STATUS_TIMEOUT)
    except Pyro4.errors.PyroError as error:  # unreachable, or something else answers there
        return [(name, 'unreachable ({})'.format(short_reason(config, error, STATUS_TIMEOUT)), '', '', '', '')], True
    if not isinstance(status, dict) or 'domains' not in status:
        return [(name, 'not a camvirtd at {}:{}'.format(config.daemon.host, config.daemon.port), '', '', '', '')], True
    rows = []
    for domain in status['domains']:
        state = domain['state'] if status['libvirt_connected'] else 'libvirt unreachable'
        for camera in domain['cameras']:
            rows.append((name, domain['name'], state, camera['id'], camera['label'],
                         absent_summary(domain)))  # passthrough devices that are not there
    return rows, bool(needs_attention(status))


def guarded_fleet_host(path):
    """fleet_host(), or one row with the error: one bad entry never ends the view."""
    try:
        return fleet_host(path)
    except Exception as e:  # pylint: disable=broad-except
        name = os.path.splitext(os.path.basename(path))[0][:64]
        return [(name, 'cannot show: ' + (first_problem(e) or type(e).__name__), '', '', '', '')], True


def first_problem(error):
    """The first line of an error, cut to a sane length, with how many more there are."""
    lines = str(error).splitlines() or ['']
    more = ' (and {} more problems)'.format(len(lines) - 1) if len(lines) > 1 else ''
    return lines[0][:300] + more


def fleet_table(rows):
    table = Table(box=None, pad_edge=False, show_edge=False, header_style='bold')
    headings = ('HOST', 'DOMAIN', 'VM STATE', 'CAMERA', 'CAMERA STATE', 'DEVICES')
    columns = 6 if any(row[5] for row in rows) else 5  # no passthrough device missing anywhere: no column
    for heading in headings[:columns]:
        table.add_column(heading, no_wrap=True)
    for host, domain, vm_state, camera, camera_state, devices in rows:
        problem = not vm_state
        cells = [escape(host), styled(domain, 'red' if problem else None),
                 styled(vm_state, VM_STATE_STYLES.get(vm_state, 'red')) if vm_state else '',
                 escape(camera), styled(camera_state, CAMERA_STATE_STYLES.get(camera_state, 'yellow'))
                 if camera_state else '', styled(devices, 'red') if devices else '']
        table.add_row(*cells[:columns])
    return table


def show_fleet(as_json, output=None):
    output = output or Output()
    try:
        paths = fleet_config_paths()
    except ClientError as e:
        print('camvirt: {}'.format(e), file=sys.stderr)
        return 1
    if not paths:
        print('camvirt: no configs found', file=sys.stderr)
        return 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(paths), FLEET_WORKERS)) as pool:
        hosts = list(pool.map(guarded_fleet_host, paths))
    rows = [row for host_rows, _ in hosts for row in host_rows]
    if as_json:
        print(json.dumps([dict(zip(FLEET_KEYS, row)) for row in rows], indent=2))
    else:
        output.print(fleet_table(rows))
    # 1 when any host needs attention or could not be shown (its row says why).
    return EXIT_NEEDS_ATTENTION if any(attention for _, attention in hosts) else 0
