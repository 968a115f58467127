"""`camvirt status --all`: a row per camera of every config whose camvirtd@ unit is enabled here (every
installed one with --installed, or those CAMVIRTD_CONFIG_PATH lists). A config that cannot be shown is
one row with a short word, and why on its own line under it, so that the table fits 80 columns."""

import concurrent.futures
import glob
import json
import os
import sys

import Pyro4.errors

from rockit.camvirt.client.configfind import CONFIG_DIR, CONFIG_ENV, SYSTEMD_UNIT_DIR, ClientError, enabled_instances
from rockit.camvirt.client.daemoncall import STATUS_TIMEOUT, call_daemon
from rockit.camvirt.client.reach import short_reason
from rockit.camvirt.client.statusview import (
    ATTENTION,
    EXIT_NEEDS_ATTENTION,
    camera_style,
    domains_meant_to_run,
    needs_attention,
    styled,
    vm_style,
)
from rockit.camvirt.client.terminal import Output
from rockit.camvirt.shared.config import ConfigError, load_config
from rockit.camvirt.shared.hostdevs import absent_summary
from rockit.camvirt.shared.registry import RegistryError, load_registry

# Configs shown at most (an observatory has a handful), queried this many at once.
MAX_FLEET = 64
FLEET_WORKERS = 16
HEADINGS = ('HOST', 'DOMAIN', 'VM STATE', 'CAMERA', 'CAMERA STATE', 'DEVICES')
FLEET_KEYS = ('host', 'domain', 'vm_state', 'camera', 'camera_state', 'devices')


def config_name(path):
    return os.path.splitext(os.path.basename(path))[0]


def fleet_config_paths(environ=None, config_dir=CONFIG_DIR, unit_dir=SYSTEMD_UNIT_DIR, installed=False):
    """[(path, counted)]: the configs to show, and whether each counts towards the exit status. By
    default those whose unit is enabled; with `installed` every one in the folder, but only enabled
    ones count (a data package installs the seed-era and today's configs of one site side by side)."""
    environ = os.environ if environ is None else environ
    if environ.get(CONFIG_ENV):
        chosen = [(p, True) for p in environ[CONFIG_ENV].split(':') if p]
    else:
        found = sorted(glob.glob(os.path.join(config_dir, '*.json')))
        enabled = enabled_instances(unit_dir)
        chosen = [(p, config_name(p) in enabled) for p in found]
        if not installed:
            chosen = [(p, counted) for p, counted in chosen if counted]
            if found and not chosen:
                raise ClientError('no camvirtd@ unit is enabled here ({} configs in {}: `camvirt status --all '
                                  '--installed` shows them all)'.format(len(found), config_dir))
    if len(chosen) > MAX_FLEET:  # a thread and a row each: bounded
        raise ClientError('{} configs to show; `status --all` shows at most {}'.format(len(chosen), MAX_FLEET))
    return chosen


class HostView:
    """One config's part of the fleet view: its rows, or the short word and the reason it has none."""

    def __init__(self, name, rows=(), word='', reason='', attention=False):
        self.name = name
        self.rows = list(rows)  # [(cells as in FLEET_KEYS, {column: style})]
        self.word = word  # 'unreachable', 'bad config', ...: in the DOMAIN column
        self.reason = reason  # why, on a line of its own
        self.attention = attention
        self.counted = True

    def as_json(self):
        if self.word:
            row = dict.fromkeys(FLEET_KEYS, '')  # every key a row has, for readers of either kind
            row.update(host=self.name, problem='{}: {}'.format(self.word, self.reason), counted=self.counted)
            return [row]
        return [dict(zip(FLEET_KEYS, cells), counted=self.counted) for cells, _ in self.rows]


def fleet_host(path):
    """The HostView of one config: its cameras' rows, or why it has none."""
    name = config_name(path)[:64]
    try:
        config = load_config(path, load_registry())
    except (ConfigError, RegistryError) as e:
        return HostView(name, word='bad config', reason=first_problem(e), attention=True)
    try:
        status = call_daemon(config, 'report_status', STATUS_TIMEOUT)
    except Pyro4.errors.PyroError as error:  # unreachable, or something else answers there
        return HostView(name, word='unreachable', reason=short_reason(config, error, STATUS_TIMEOUT), attention=True)
    if not isinstance(status, dict) or 'domains' not in status:
        return HostView(name, word='not camvirtd', reason='something else answers at {}:{}'.format(
            config.daemon.host, config.daemon.port), attention=True)
    return HostView(name, rows=status_rows(name, status), attention=bool(needs_attention(status)))


def status_rows(name, status):
    busy, meant_to_run = bool(status.get('command')), domains_meant_to_run(status)
    rows = []
    for domain in status['domains']:
        connected = status.get('libvirt_connected', True)
        state = domain['state'] if connected else 'libvirt unreachable'
        vm = vm_style(domain, busy, meant_to_run) if connected else ATTENTION
        for camera in domain['cameras']:
            devices = absent_summary(domain)  # passthrough devices that are not there
            cells = (name, domain['name'], state, camera['id'], camera['label'], devices)
            styles = {2: vm, 4: camera_style(domain, camera, busy), 5: ATTENTION if devices.startswith('absent')
                      else None}
            rows.append((cells, styles))
    return rows


def guarded_fleet_host(path):
    """fleet_host(), or a HostView with the error: one bad entry never ends the view."""
    try:
        return fleet_host(path)
    except Exception as e:
        return HostView(config_name(path)[:64], word='cannot show', reason=first_problem(e) or type(e).__name__,
                        attention=True)


def first_problem(error):
    """The first line of an error, cut to a sane length, with how many more there are."""
    lines = str(error).splitlines() or ['']
    more = ' (and {} more problems)'.format(len(lines) - 1) if len(lines) > 1 else ''
    return lines[0][:300] + more


def fleet_lines(hosts):
    """The table as markup lines: columns as wide as their widest cell, a problem's reason on its own
    line under its host's row (the terminal wraps it, the columns stay)."""
    columns = 6 if any(cells[5] for host in hosts for cells, _ in host.rows) else 5  # no device column unless needed
    blocks = []  # per host: its rows, then its reason
    for host in hosts:
        rows = [(cells[:columns], styles) for cells, styles in host.rows]
        if host.word:
            rows = [((host.name, host.word) + ('',) * (columns - 2), {1: ATTENTION})]
        blocks.append((rows, host.reason if host.word else ''))
    header = (HEADINGS[:columns], {c: 'bold' for c in range(columns)})
    every_row = [header] + [row for rows, _ in blocks for row in rows]
    widths = [max(len(cells[c]) for cells, _ in every_row) for c in range(columns)]

    def line(cells, styles):
        return '  '.join(styled(text, styles.get(c)) + ' ' * (widths[c] - len(text))
                         for c, text in enumerate(cells)).rstrip()

    lines = [line(*header)]
    for rows, reason in blocks:
        lines += [line(*row) for row in rows]
        lines += ['  ' + styled(reason, ATTENTION)] if reason else []
    return lines


def show_fleet(as_json, output=None, installed=False):
    output = output or Output()
    try:
        chosen = fleet_config_paths(installed=installed)
    except ClientError as e:
        print('camvirt: {}'.format(e), file=sys.stderr)
        return 1
    if not chosen:
        print('camvirt: no configs found', file=sys.stderr)
        return 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(chosen), FLEET_WORKERS)) as pool:
        hosts = list(pool.map(guarded_fleet_host, [path for path, _ in chosen]))
    for host, (_, counted) in zip(hosts, chosen):
        host.counted = counted
    if as_json:
        print(json.dumps([row for host in hosts for row in host.as_json()], indent=2))
    else:
        output.print(*fleet_lines(hosts))
    # 1 when any counted host needs attention or could not be shown (its row says why).
    return EXIT_NEEDS_ATTENTION if any(host.attention and host.counted for host in hosts) else 0
