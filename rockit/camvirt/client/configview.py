"""`camvirt config`: the resolved config, where each name in it came from, and the passthrough devices."""

import json
import sys

from rockit.camvirt.client.daemoncall import call_daemon
from rockit.camvirt.client.devicequery import config_devices
from rockit.camvirt.shared.hostdevs import entry_text
from rockit.camvirt.shared.statepaths import SYSTEM_STATE_DIR, state_path

CONFIG_DEVICES_TIMEOUT = 3  # `camvirt config` asks camvirtd for devices, briefly


def state_file(config):
    """Where the service keeps this config's memory (its unit's StateDirectory=camvirtd)."""
    return state_path(SYSTEM_STATE_DIR, config.path)


def config_summary(config):
    return {
        'config': config.path,
        'config_chosen': getattr(config, 'chosen_because', None),
        'server_uri': config.daemon.uri,
        'host': config.daemon.host,
        'port': config.daemon.port,
        'libvirt_uri': config.libvirt_uri,
        'control_machines': dict(config.control_machines),
        'initialize_timeout': config.initialize_timeout,
        'shutdown_timeout': config.shutdown_timeout,
        'camera_timeout': config.camera_timeout,
        'shutdown_repeat_interval': config.shutdown_repeat_interval,
        'force_shutdown': config.force_shutdown,
        'restart_crashed': config.restart_crashed,
        'restart_crashed_per_hour': config.restart_crashed_per_hour,
        'log_name': config.log_name,
        'log_daemon': log_daemon_summary(config),
        'state_file': state_file(config),
        'domains': {name: {c.id: c.address.uri for c in cameras} for name, cameras in config.domains.items()},
        'sources': name_sources(config),
        'registry_warnings': list(config.registry.warnings),
    }


def log_daemon_summary(config):
    """Where the observatory log lines go: the daemon, its address and machine, or None (journal only)."""
    daemon = config.log_daemon
    if daemon is None:
        return None
    return {'name': daemon.name, 'uri': daemon.uri, 'host': daemon.host, 'port': daemon.port,
            'machine': config.registry.host_machine(daemon.name)}


def name_sources(config):
    """Which registry layer (shipped, rockit.common or an operator file) each name the config uses came from."""
    daemons = [config.daemon_name] + [c.daemon_name for c in config.cameras.values()]
    daemons += [config.log_daemon.name] if config.log_daemon else []
    return config.registry.sources_for(daemons, config.control_machines)


def from_where(config, daemon_name):
    return '({} from {})'.format(daemon_name, config.registry.describe_daemon(daemon_name))


def add_config_devices(summary, config):
    """Each domain's passthrough devices: from camvirtd, else libvirt read-only (devicequery)."""
    devices, source = config_devices(config.libvirt_uri, list(config.domains),
                                     lambda: call_daemon(config, 'report_status', CONFIG_DEVICES_TIMEOUT))
    summary['devices'], summary['devices_source'] = devices, source
    return summary


# The proxy timeouts of opsd's `ops` scripts (run by hand): initialize 70 s, shutdown 40 s.
OPS_SCRIPT_TIMEOUTS = {'initialize': 70, 'shutdown': 40}


def ops_scripts_note(config):
    """A note (not a warning: upstream ships initialize 90 s too) when a command may outlast the ops
    script's wait for it: the script then gives up while camvirtd carries on and logs the outcome."""
    longer = ['{} {} s'.format(name, timeout) for name, timeout in
              (('initialize', config.initialize_timeout), ('shutdown', config.shutdown_timeout))
              if timeout > OPS_SCRIPT_TIMEOUTS[name]]
    if not longer:
        return None
    return ('opsd\'s ops scripts wait initialize 70 s, shutdown 40 s; {} may take longer: the script then '
            'gives up while camvirtd carries on (its log has the outcome)'.format(', '.join(longer)))


def show_config(config, as_json):
    summary = add_config_devices(config_summary(config), config)
    if as_json:
        print(json.dumps(summary, indent=2))
        return 0
    machines = summary['sources']['machines']
    print('config:           {}{}'.format(config.path, ' ({})'.format(summary['config_chosen'])
                                          if summary['config_chosen'] else ''))
    print('server:           {} {}'.format(summary['server_uri'], from_where(config, config.daemon_name)))
    print('port:             {}/tcp (open this in the firewall)'.format(summary['port']))
    print('libvirt:          {}'.format(summary['libvirt_uri']))
    print('control machines: {}'.format(', '.join('{} ({}, from {})'.format(m, ip, machines[m]) for m, ip in
                                                   summary['control_machines'].items())))
    print('timeouts:         initialize {} s, shutdown {} s (asked again every {} s), camera {} s'.format(
        config.initialize_timeout, config.shutdown_timeout, config.shutdown_repeat_interval, config.camera_timeout))
    note = ops_scripts_note(config)
    if note:
        print('note:             ' + note)
    print('force shutdown:   {}'.format('yes: what still runs at shutdown_timeout is powered off'
                                        if config.force_shutdown else 'no (camvirt kill --force does it once)'))
    print('restart crashed:  {}'.format('yes, at most {} an hour'.format(config.restart_crashed_per_hour)
                                        if config.restart_crashed else 'no: a VM that stops is reported only'))
    log = summary['log_daemon']
    if log:
        print('log:              table {} on {}{} {}'.format(
            config.log_name, log['uri'], ' (machine {})'.format(log['machine']) if log['machine'] else '',
            from_where(config, log['name'])))
    else:
        print('log:              journal only (no log daemon in the registry; table {})'.format(config.log_name))
    print('state file:       {} (as the service keeps it)'.format(summary['state_file']))
    for name, cameras in summary['domains'].items():
        for camera in config.domains[name]:
            print('domain {}: camera {} -> {} {}'.format(name, camera.id, cameras[camera.id],
                                                        from_where(config, camera.daemon_name)))
    for warning in config.registry.warnings:
        print('camvirt: warning: {}'.format(warning), file=sys.stderr)
    print_config_devices(summary)
    return 0


def print_config_devices(summary):
    """'domain cam1: USB device 03c3:2600 (ZWO ASI2600MM Pro) present'."""
    print('devices from:     {}'.format(summary['devices_source']))
    if summary['devices'] is None:
        return
    for name, entries in summary['devices'].items():
        for entry in entries:
            print('domain {}: {}'.format(name, entry_text(entry)))
        if not entries:
            print('domain {}: no passthrough devices'.format(name))
