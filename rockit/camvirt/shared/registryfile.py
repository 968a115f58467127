"""One registry file (the shipped data/registry.json or an operator's): read within bounds, checked in
full, one line per problem naming the file and the key. Plain checks rather than a JSON schema: the shape
is small and fixed, and the messages stay the project's own on every jsonschema version.

A registry file:
    {"daemons": {"name": {"object_id": "...", "host": "MachineName or IP", "port": 9000}},
     "machines": {"MachineName": "10.0.0.1"}}
Keys starting with "_" are comments. Whether a daemon's host machine is known is checked once every
layer is loaded (registry.py), since an operator file may place a daemon on a machine named elsewhere.
"""

import ipaddress
import re

import Pyro4.constants
import Pyro4.core
import Pyro4.errors

from .jsonfile import JsonFileError, read_json_file

# Daemon and machine names: what rockit.common's attribute names and today's registry use.
NAME_PATTERN = re.compile(r'[A-Za-z0-9._+-]{1,64}\Z')
_DOTTED_NUMBERS = re.compile(r'[0-9.]+\Z')
MAX_OBJECT_ID = 128
# More problems than this in one file are counted, not listed: the output stays readable.
MAX_PROBLEMS = 20
_TOP_KEYS = ('daemons', 'machines')
_DAEMON_KEYS = ('object_id', 'host', 'port')


class RegistryError(Exception):
    """A registry that cannot be used. `problems` holds one line per problem, each naming the file."""

    def __init__(self, problems):
        super().__init__('\n'.join(problems))
        self.problems = list(problems)


def capped(lines, path):
    """`lines` (all about the file at `path`), the ones past MAX_PROBLEMS counted in one last line."""
    if len(lines) <= MAX_PROBLEMS:
        return lines
    return lines[:MAX_PROBLEMS] + ['{}: ... and {} more problems'.format(path, len(lines) - MAX_PROBLEMS)]


def shown(value, limit=40):
    """`value` as it appears in a message: repr, cut short so that a hostile file cannot make a long line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 5] + '...' + text[-2:]


def ip_problem(value):
    """(normalised IP text, None) or (None, what is wrong)."""
    if not isinstance(value, str):
        return None, '{} is not an IP address (a string such as "10.2.6.173")'.format(shown(value))
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None, '{} is not an IP address'.format(shown(value))
    if '%' in value:
        return None, '{} is a scoped IPv6 address, which a Pyro URI cannot carry'.format(shown(value))
    return str(address), None


def name_problem(name, what):
    if isinstance(name, str) and NAME_PATTERN.match(name):
        return None
    return '{} is not a valid {} name (letters, digits and ._+-, at most 64)'.format(shown(name), what)


def object_id_problem(value):
    """None when Pyro4 serves and addresses `value` as an object id as it is; else what is wrong."""
    rule = 'a Pyro object id is 1-{} printable characters without spaces or "@"'.format(MAX_OBJECT_ID)
    if not isinstance(value, str) or not value or len(value) > MAX_OBJECT_ID or not value.isprintable():
        return '{} is not a Pyro object id ({})'.format(shown(value), rule)
    if value == Pyro4.constants.DAEMON_NAME:
        return '{} is the id Pyro reserves for its daemon object'.format(shown(value))
    try:
        round_trip = Pyro4.core.URI('PYRO:{}@127.0.0.1:1'.format(value)).object
    except Pyro4.errors.PyroError:
        round_trip = None
    if round_trip != value:
        return '{} is not a Pyro object id ({})'.format(shown(value), rule)
    return None


def port_problem(value):
    # bool is an int in Python; 9020.0, 1e400 (inf) and "9020" are not ports either.
    if isinstance(value, bool) or not isinstance(value, int):
        return '{} is not a TCP port (an integer 1-65535)'.format(shown(value))
    if not 1 <= value <= 65535:
        return '{} is not a TCP port (1-65535)'.format(value)
    return None


def host_problem(value):
    """(host as stored, None) or (None, what is wrong): an IP literal (normalised) or a machine name."""
    if isinstance(value, str) and NAME_PATTERN.match(value):
        try:
            return str(ipaddress.ip_address(value)), None
        except ValueError:
            pass
        if _DOTTED_NUMBERS.match(value):  # meant as an address, not a machine name
            return None, '{} is not an IP address'.format(shown(value))
        return value, None
    ip, problem = ip_problem(value)
    if ip is None:
        problem = '{} is neither a machine name nor an IP address'.format(shown(value))
    return ip, problem


def daemon_entry(entry):
    """((object_id, host, port), []) for a valid daemon entry, else (None, [(subkey, problem)])."""
    if not isinstance(entry, dict):
        return None, [('', 'must be an object with "object_id", "host" and "port", not {}'.format(shown(entry)))]
    problems = [(key, 'is missing (a daemon has "object_id", "host" and "port")')
                for key in _DAEMON_KEYS if key not in entry]
    problems += [(key_text(key), 'is not a daemon key (a daemon has "object_id", "host" and "port")')
                 for key in entry if key not in _DAEMON_KEYS and not _is_comment(key)]
    host, problem = host_problem(entry['host']) if 'host' in entry else (None, None)
    checks = [('object_id', object_id_problem(entry['object_id']) if 'object_id' in entry else None),
              ('host', problem),
              ('port', port_problem(entry['port']) if 'port' in entry else None)]
    problems += [(key, text) for key, text in checks if text]
    if problems:
        return None, problems
    return (entry['object_id'], host, entry['port']), []


def key_text(key):
    """A key from the file as it appears in a key path: escaped (no line breaks), cut short."""
    return shown(key, 70)[1:-1]


def _is_comment(key):
    return isinstance(key, str) and key.startswith('_')


def _key(*parts):
    return '.'.join(str(p) for p in parts if p != '')


def _section(data, key, describe):
    value = data.get(key, {})
    if isinstance(value, dict):
        return value, []
    return {}, [(key, 'must be an object mapping {}, not {}'.format(describe, shown(value)))]


def parse_registry_data(data, path):
    """(daemons, machines) from a registry file's parsed JSON: daemons name -> (object_id, host, port),
    machines name -> normalised IP. RegistryError lists every problem."""
    if not isinstance(data, dict):
        raise RegistryError(['{}: a registry file must hold a JSON object, not {}'.format(
            path, 'a list' if isinstance(data, list) else shown(data))])
    problems = [(key_text(key), 'is not a registry key (a registry file has "daemons" and "machines")')
                for key in data if key not in _TOP_KEYS and not _is_comment(key)]
    machine_section, found = _section(data, 'machines', 'machine names to IP addresses')
    problems += found
    daemon_section, found = _section(data, 'daemons', 'daemon names to {object_id, host, port}')
    problems += found
    machines, daemons = {}, {}
    for name, value in machine_section.items():
        ip, problem = ip_problem(value)
        problem = name_problem(name, 'machine') or problem
        if problem:
            problems.append((_key('machines', key_text(name)), problem))
        else:
            machines[name] = ip
    for name, entry in daemon_section.items():
        problem = name_problem(name, 'daemon')
        if problem:
            problems.append((_key('daemons', key_text(name)), problem))
            continue
        address, found = daemon_entry(entry)
        problems += [(_key('daemons', name, key), text) for key, text in found]
        if address:
            daemons[name] = address
    if problems:
        raise RegistryError(capped(['{}: {}: {}'.format(path, key, text) for key, text in problems], path))
    return daemons, machines


def read_registry_file(path):
    """(daemons, machines) of the registry file at `path`; RegistryError with one line per problem."""
    try:
        data = read_json_file(path, 'registry file')
    except JsonFileError as e:
        raise RegistryError([str(e)]) from None
    return parse_registry_data(data, path)
