"""camvirtd's JSON config: its schema, its checks against the registry, and the parsed Config."""

import json

import jsonschema

DEFAULT_LIBVIRT_URI = 'qemu:///system'
DEFAULT_LOG_DAEMON = 'observatory_log'

CONFIG_SCHEMA = {
    'type': 'object',
    'additionalProperties': False,
    'required': ['daemon', 'log_name', 'control_machines', 'initialize_timeout', 'shutdown_timeout',
                 'domains'],
    'properties': {
        'daemon': {'type': 'string', 'minLength': 1},
        'log_name': {'type': 'string', 'minLength': 1},
        'control_machines': {'type': 'array', 'items': {'type': 'string'}, 'uniqueItems': True},
        'initialize_timeout': {'type': 'number', 'minimum': 1},
        'shutdown_timeout': {'type': 'number', 'minimum': 1},
        'domains': {
            'type': 'object',
            'minProperties': 1,
            'additionalProperties': {
                'type': 'object',
                'minProperties': 1,
                'additionalProperties': {'type': 'string', 'minLength': 1},
            },
        },
        # Optional keys: not in the rockit site configs, which load with the defaults.
        'libvirt_uri': {'type': 'string', 'minLength': 1},
        'log_daemon': {'type': 'string', 'minLength': 1},
        'camera_timeout': {'type': 'number', 'exclusiveMinimum': 0, 'maximum': 10},
        'shutdown_repeat_interval': {'type': 'number', 'minimum': 1},
        'force_shutdown': {'type': 'boolean'},
        'restart_crashed': {'type': 'boolean'},
        'restart_crashed_per_hour': {'type': 'integer', 'minimum': 1},
    },
}


class ConfigError(Exception):
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


def _key_path(parts):
    return '.'.join(str(p) for p in parts) or '(top level)'


def schema_problems(data):
    """(key path, message) for each way `data` breaks the schema."""
    validator = jsonschema.Draft7Validator(CONFIG_SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    return [(_key_path(e.absolute_path), e.message) for e in errors]


def registry_problems(data, registry):
    """(key path, message) for each name the registry does not know and each camera id used twice."""
    problems = []
    if not registry.has_daemon(data['daemon']):
        problems.append(('daemon', 'unknown daemon name {!r}'.format(data['daemon'])))
    if 'log_daemon' in data and not registry.has_daemon(data['log_daemon']):
        problems.append(('log_daemon', 'unknown daemon name {!r}'.format(data['log_daemon'])))
    for i, machine in enumerate(data['control_machines']):
        if not registry.has_machine(machine):
            problems.append(('control_machines.{}'.format(i), 'unknown machine name {!r}'.format(machine)))
    first_domain = {}
    for domain, cameras in data['domains'].items():
        for camera_id, daemon_name in cameras.items():
            key = 'domains.{}.{}'.format(domain, camera_id)
            if camera_id in first_domain:
                problems.append((key, 'camera id {!r} is already used by domain {!r}'.format(
                    camera_id, first_domain[camera_id])))
            first_domain.setdefault(camera_id, domain)
            if not registry.has_daemon(daemon_name):
                problems.append((key, 'unknown daemon name {!r}'.format(daemon_name)))
    return problems


def parse_config(data, path, registry):
    """A Config from parsed JSON, or ConfigError with one line per problem."""
    problems = schema_problems(data)
    if not problems:
        problems = registry_problems(data, registry)
    if problems:
        raise ConfigError(['{}: {}: {}'.format(path, key, message) for key, message in problems])
    return Config(path, data, registry)


def load_config(path, registry):
    """Reads and validates the config file at `path`; raises ConfigError."""
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise ConfigError(['{}: cannot read config: {}'.format(path, e.strerror)]) from None
    except ValueError as e:
        raise ConfigError(['{}: not valid JSON: {}'.format(path, e)]) from None
    return parse_config(data, path, registry)
