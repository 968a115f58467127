"""camvirtd's JSON config: its schema, its checks against the registry, and the parsed Config."""

import math

import jsonschema

from .constants import NAME_PATTERN
from .errors import CamvirtError
from .jsonfile import JsonFileError, read_json_file
from .schemawords import schema_problems as described_problems

DEFAULT_LIBVIRT_URI = 'qemu:///system'
DEFAULT_LOG_DAEMON = 'observatory_log'

# Bounds far above any real config (the largest site config has 4 cameras), so that a
# hostile or broken one costs a few lines and milliseconds, not minutes.
MAX_DOMAINS = 32
MAX_CAMERAS = 32  # in all, over every domain
MAX_CONTROL_MACHINES = 32
MAX_NAME = 100  # registry names: daemons, machines, the log table
MAX_URI = 1000
MAX_SECONDS = 3600
# camera_timeout must be under the 5 s proxy timeout of every rockit client (the dashboard, opsd's
# ops scripts): a query waits at most camera_timeout on a camd, and its answer (or error) must reach
# them in time. 5 s or more is refused.
CAMERA_TIMEOUT_LIMIT = 5
# A broken config can break every rule on every key; the first lines say enough.
MAX_PROBLEM_LINES = 20

_REGISTRY_NAME = {'type': 'string', 'minLength': 1, 'maxLength': MAX_NAME}
_SECONDS = {'type': 'number', 'minimum': 1, 'maximum': MAX_SECONDS}

CONFIG_SCHEMA = {
    'type': 'object',
    'additionalProperties': False,
    'required': ['daemon', 'log_name', 'control_machines', 'initialize_timeout', 'shutdown_timeout',
                 'domains'],
    'properties': {
        'daemon': _REGISTRY_NAME,
        'log_name': _REGISTRY_NAME,
        'control_machines': {'type': 'array', 'items': _REGISTRY_NAME, 'uniqueItems': True,
                             'maxItems': MAX_CONTROL_MACHINES},
        'initialize_timeout': _SECONDS,
        'shutdown_timeout': _SECONDS,
        'domains': {
            'type': 'object',
            'minProperties': 1,
            'maxProperties': MAX_DOMAINS,
            'propertyNames': {'pattern': NAME_PATTERN},
            'additionalProperties': {
                'type': 'object',
                'minProperties': 1,
                'maxProperties': MAX_CAMERAS,
                'propertyNames': {'pattern': NAME_PATTERN},
                'additionalProperties': _REGISTRY_NAME,
            },
        },
        # Optional keys: not in the rockit site configs, which load with the defaults.
        'libvirt_uri': {'type': 'string', 'minLength': 1, 'maxLength': MAX_URI},
        'log_daemon': _REGISTRY_NAME,
        'camera_timeout': {'type': 'number', 'exclusiveMinimum': 0, 'exclusiveMaximum': CAMERA_TIMEOUT_LIMIT},
        'shutdown_repeat_interval': _SECONDS,
        'force_shutdown': {'type': 'boolean'},
        'restart_crashed': {'type': 'boolean'},
        'restart_crashed_per_hour': {'type': 'integer', 'minimum': 1, 'maximum': 100},
    },
}


class ConfigError(CamvirtError):
    """A config that cannot be used. `problems` holds one line per problem, each naming the file."""

    def __init__(self, problems):
        super().__init__('\n'.join(problems))
        self.problems = problems


class Camera:
    """One camera: its id, the domain (VM) it runs in and its camd's registry name and address."""

    def __init__(self, camera_id, domain, daemon_name, address):
        self.id = camera_id
        self.domain = domain
        self.daemon_name = daemon_name
        self.address = address


class Config:
    """A validated config with its names resolved through the registry."""

    def __init__(self, path, data, registry):
        self.path = path
        # Kept for where each name came from (camvirt config shows it).
        self.registry = registry
        self.daemon_name = data['daemon']
        self.daemon = registry.daemon(data['daemon'])
        self.log_name = data['log_name']
        # machine name -> IP, in config order
        self.control_machines = {m: registry.machine_ip(m) for m in data['control_machines']}
        self.control_ips = frozenset(self.control_machines.values())
        self.initialize_timeout = data['initialize_timeout']
        self.shutdown_timeout = data['shutdown_timeout']
        self.libvirt_uri = data.get('libvirt_uri', DEFAULT_LIBVIRT_URI)
        log_daemon = data.get('log_daemon', DEFAULT_LOG_DAEMON)
        self.log_daemon = registry.daemon(log_daemon) if registry.has_daemon(log_daemon) else None
        self.camera_timeout = data.get('camera_timeout', 1.0)
        self.shutdown_repeat_interval = data.get('shutdown_repeat_interval', 5)
        # Power off (libvirt destroy) what is still running when shutdown_timeout passes.
        self.force_shutdown = data.get('force_shutdown', False)
        # Start again a domain that stops while it should run, at most this often an hour.
        self.restart_crashed = data.get('restart_crashed', False)
        self.restart_crashed_per_hour = data.get('restart_crashed_per_hour', 3)
        # domain name -> [Camera], in config order; camera id -> Camera
        self.domains = {}
        self.cameras = {}
        for domain, cameras in data['domains'].items():
            self.domains[domain] = []
            for camera_id, daemon_name in cameras.items():
                camera = Camera(camera_id, domain, daemon_name, registry.daemon(daemon_name))
                self.domains[domain].append(camera)
                self.cameras[camera_id] = camera


_VALIDATOR = jsonschema.Draft7Validator(CONFIG_SCHEMA)


def size_problems(data):
    """The counts checked before the schema, so that 300,000 domains cost one line and no
    time: a config over them is not checked further."""
    if not isinstance(data, dict):
        return []
    problems = []
    machines, domains = data.get('control_machines'), data.get('domains')
    if isinstance(machines, list) and len(machines) > MAX_CONTROL_MACHINES:
        problems.append(('control_machines', 'has {} items, at most {} allowed'.format(
            len(machines), MAX_CONTROL_MACHINES)))
    if isinstance(domains, dict):
        if len(domains) > MAX_DOMAINS:
            problems.append(('domains', 'has {} domains, at most {} allowed'.format(len(domains), MAX_DOMAINS)))
        cameras = sum(len(c) for c in domains.values() if isinstance(c, dict))
        if len(domains) <= MAX_DOMAINS and cameras > MAX_CAMERAS:
            problems.append(('domains', 'has {} cameras in all, at most {} allowed'.format(cameras, MAX_CAMERAS)))
    return problems


def number_problems(data):
    """NaN passes every bound a schema sets: each comparison with it is false. (Infinity fails the
    maximum every number here has.)"""
    if not isinstance(data, dict):
        return []
    return [(key, 'must be a finite number, not {}'.format(value)) for key, value in data.items()
            if isinstance(value, float) and math.isnan(value) and key in CONFIG_SCHEMA['properties']]


def schema_problems(data):
    """(key path, message) for each way `data` breaks the schema, in the project's own words."""
    problems = size_problems(data)
    if problems:
        return problems
    return sorted(set(described_problems(_VALIDATOR, data)) | set(number_problems(data)))


# Where a name the registry lacks can be added: said with every unknown name, for a new site.
REGISTRY_HINT = ('in none of the registry layers (shipped, rockit.common, /etc/camvirtd/registry.d/*.json or '
                 'CAMVIRTD_REGISTRY): add it in a file in /etc/camvirtd/registry.d')


def unknown_name(kind, name):
    return 'unknown {} name {!r} ({})'.format(kind, name, REGISTRY_HINT)


def _text(value):
    return isinstance(value, str)


def registry_problems(data, registry):
    """(key path, message) for each name the registry does not know and each camera id used twice, in
    whatever part of `data` has the right shape (so that they come with the schema's problems)."""
    if not isinstance(data, dict):
        return []
    problems = []
    if _text(data.get('daemon')) and not registry.has_daemon(data['daemon']):
        problems.append(('daemon', unknown_name('daemon', data['daemon'])))
    if _text(data.get('log_daemon')) and not registry.has_daemon(data['log_daemon']):
        problems.append(('log_daemon', unknown_name('daemon', data['log_daemon'])))
    machines = data.get('control_machines')
    for i, machine in enumerate(machines if isinstance(machines, list) else []):
        if _text(machine) and not registry.has_machine(machine):
            problems.append(('control_machines.{}'.format(i), unknown_name('machine', machine)))
    first_domain = {}
    domains = data.get('domains')
    for domain, cameras in (domains.items() if isinstance(domains, dict) else []):
        if not isinstance(cameras, dict):
            continue
        for camera_id, daemon_name in cameras.items():
            if not _text(daemon_name):
                continue
            key = 'domains.{}.{}'.format(domain, camera_id)
            if camera_id in first_domain:
                problems.append((key, 'camera id {!r} is already used by domain {!r}'.format(
                    camera_id, first_domain[camera_id])))
            first_domain.setdefault(camera_id, domain)
            if not registry.has_daemon(daemon_name):
                problems.append((key, unknown_name('daemon', daemon_name)))
    return problems


def parse_config(data, path, registry):
    """A Config from parsed JSON, or ConfigError with one line per problem: the schema's and the
    registry's together (a config over the size bounds stops at those)."""
    problems = size_problems(data)
    if not problems:
        problems = schema_problems(data)
        problems += [p for p in registry_problems(data, registry) if p not in problems]
    if problems:
        raise ConfigError(problem_lines(path, problems))
    return Config(path, data, registry)


def problem_lines(path, problems):
    """One line per problem, at most MAX_PROBLEM_LINES of them."""
    lines = ['{}: {}: {}'.format(path, key, message) for key, message in problems[:MAX_PROBLEM_LINES]]
    if len(problems) > MAX_PROBLEM_LINES:
        lines.append('{}: ... and {} more problems'.format(path, len(problems) - MAX_PROBLEM_LINES))
    return lines


def load_config(path, registry):
    """Reads and validates the config file at `path`; raises ConfigError."""
    try:
        data = read_json_file(path, 'config')  # regular files only, bounded size and nesting
    except JsonFileError as e:
        raise ConfigError([str(e)]) from None
    return parse_config(data, path, registry)
