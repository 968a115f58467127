"""One registry file: checked in full, one line per problem naming the file and the key, in the
project's own words, of sane length; what passes is normalised."""

import json
import os

import pytest

from rockit.camvirt.shared.registryfile import MAX_PROBLEMS, RegistryError, object_id_problem, read_registry_file


def problems_of(tmp_path, content):
    path = tmp_path / 'bad.json'
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(RegistryError) as raised:
        read_registry_file(str(path))
    for line in raised.value.problems:
        assert line.startswith(str(path) + ': ') and len(line) < len(str(path)) + 200, line
        assert '\n' not in line
    assert str(raised.value) == '\n'.join(raised.value.problems)
    return [line[len(str(path)) + 2:] for line in raised.value.problems]


def daemon(**changes):
    entry = {'object_id': 'cam_daemon', 'host': 'LocalHost', 'port': 9020}
    entry.update(changes)
    return {'daemons': {'cam': entry}}


BAD = {
    # case: (file content, the one line after the path)
    'not json': ('{', 'registry file is not valid JSON: Expecting property name enclosed in double quotes: '
                      'line 1 column 2 (char 1)'),
    'a list': ('[]', 'a registry file must hold a JSON object, not a list'),
    'machines a list': ({'machines': []},
                        'machines: must be an object mapping machine names to IP addresses, not []'),
    'daemons a string': ({'daemons': 'x'},
                         "daemons: must be an object mapping daemon names to {object_id, host, port}, not 'x'"),
    'unknown key': ({'machine': {}}, 'machine: is not a registry key (a registry file has "daemons" and "machines")'),
    'bad address': ({'machines': {'X': '999.1.1.1'}}, "machines.X: '999.1.1.1' is not an IP address"),
    'address not a string': ({'machines': {'X': 10}},
                             'machines.X: 10 is not an IP address (a string such as "10.2.6.173")'),
    'scoped address': ({'machines': {'X': 'fe80::1%eth0'}},
                       "machines.X: 'fe80::1%eth0' is a scoped IPv6 address, which a Pyro URI cannot carry"),
    'bad machine name': ({'machines': {'a b': '10.0.0.1'}},
                         "machines.a b: 'a b' is not a valid machine name (letters, digits and ._+-, at most 64)"),
    'daemon not an object': ({'daemons': {'cam': 9020}},
                             'daemons.cam: must be an object with "object_id", "host" and "port", not 9020'),
    'missing port': ({'daemons': {'cam': {'object_id': 'x', 'host': 'LocalHost'}}},
                     'daemons.cam.port: is missing (a daemon has "object_id", "host" and "port")'),
    'unknown daemon key': (daemon(prot=1),
                           'daemons.cam.prot: is not a daemon key (a daemon has "object_id", "host" and "port")'),
    'port 0': (daemon(port=0), 'daemons.cam.port: 0 is not a TCP port (1-65535)'),
    'port 70000': (daemon(port=70000), 'daemons.cam.port: 70000 is not a TCP port (1-65535)'),
    'port -1': (daemon(port=-1), 'daemons.cam.port: -1 is not a TCP port (1-65535)'),
    'port 9020.5': (daemon(port=9020.5), 'daemons.cam.port: 9020.5 is not a TCP port (an integer 1-65535)'),
    'port 9020.0': (daemon(port=9020.0), 'daemons.cam.port: 9020.0 is not a TCP port (an integer 1-65535)'),
    'port 1e400': ('{"daemons": {"cam": {"object_id": "x", "host": "LocalHost", "port": 1e400}}}',
                   'daemons.cam.port: inf is not a TCP port (an integer 1-65535)'),
    'port true': (daemon(port=True), 'daemons.cam.port: True is not a TCP port (an integer 1-65535)'),
    'port a string': (daemon(port='9020'), "daemons.cam.port: '9020' is not a TCP port (an integer 1-65535)"),
    'object id with a space': (daemon(object_id='cam daemon'),
                               "daemons.cam.object_id: 'cam daemon' is not a Pyro object id (a Pyro object id "
                               'is 1-128 printable characters without spaces or "@")'),
    "Pyro's own id": (daemon(object_id='Pyro.Daemon'),
                      "daemons.cam.object_id: 'Pyro.Daemon' is the id Pyro reserves for its daemon object"),
    'host a bad address': (daemon(host='999.1.1.1'), "daemons.cam.host: '999.1.1.1' is not an IP address"),
    'host a number': (daemon(host=10), 'daemons.cam.host: 10 is neither a machine name nor an IP address'),
    'host with a space': (daemon(host='Local Host'),
                          "daemons.cam.host: 'Local Host' is neither a machine name nor an IP address"),
}


@pytest.mark.parametrize('case', sorted(BAD))
def test_a_bad_registry_file_gets_one_line_naming_the_key(tmp_path, case):
    content, expected = BAD[case]
    assert problems_of(tmp_path, content) == [expected]


def test_every_problem_in_a_file_gets_its_line(tmp_path):
    content = {'machines': {'A': 'x', 'B': '10.0.0.1'},
               'daemons': {'c': {'object_id': 'c d', 'host': 'B', 'port': 0}, 'e': []}}
    assert [line.split(': ')[0] for line in problems_of(tmp_path, content)] == [
        'machines.A', 'daemons.c.object_id', 'daemons.c.port', 'daemons.e']


def test_many_problems_are_counted_not_all_listed(tmp_path):
    content = {'machines': {'M{}'.format(i): 'bad' for i in range(1000)}}
    problems = problems_of(tmp_path, content)
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1] == '... and {} more problems'.format(1000 - MAX_PROBLEMS)


def test_hostile_names_and_values_are_cut_short(tmp_path):
    long = 'x' * 500000  # under the 1 MiB cap: the checks see it
    (line,) = problems_of(tmp_path, {'machines': {'A': long}})
    assert line.startswith("machines.A: 'xxx") and '...' in line
    (line,) = problems_of(tmp_path, {'machines': {long: '10.0.0.1'}})
    assert line.startswith('machines.xxx') and 'is not a valid machine name' in line
    (line,) = problems_of(tmp_path, {long: 1})
    assert line.startswith('xxx') and line.endswith('is not a registry key (a registry file has "daemons" and '
                                                    '"machines")')
    (line,) = problems_of(tmp_path, daemon(**{'a\nb': 1}))
    assert line.startswith('daemons.cam.a\\nb: is not a daemon key')


@pytest.mark.parametrize('kind', ['fifo', 'directory', 'too large', 'too deep'])
def test_files_that_are_not_registry_files_are_refused_at_once(tmp_path, kind):
    path = tmp_path / 'r.json'
    if kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'directory':
        path.mkdir()
    elif kind == 'too large':
        path.write_text('{"_": "' + 'x' * (2 * 1024 * 1024) + '"}')
    else:
        path.write_text('[' * 100000 + ']' * 100000)
    with pytest.raises(RegistryError) as raised:
        read_registry_file(str(path))
    (line,) = raised.value.problems
    assert line.startswith('{}: '.format(path)) and len(line) < 200


def test_a_good_file_is_normalised(tmp_path):
    path = tmp_path / 'good.json'
    path.write_text(json.dumps({
        '_about': 'a comment', 'machines': {'V6': '2001:DB8:0:0:0:0:0:1', 'V4': '10.2.6.173'},
        'daemons': {'d': {'object_id': 'd:1', 'host': '0:0:0:0:0:0:0:1', 'port': 1, '_why': 'a comment'},
                    'e': {'object_id': 'e', 'host': 'V6', 'port': 65535}}}))
    daemons, machines = read_registry_file(str(path))
    assert machines == {'V6': '2001:db8::1', 'V4': '10.2.6.173'}
    assert daemons == {'d': ('d:1', '::1', 1), 'e': ('e', 'V6', 65535)}


@pytest.mark.parametrize('object_id', ['a', 'sting_camvirt_daemon_das1', 'a:b', 'a.b-c+d', 'x' * 128])
def test_object_ids_pyro_addresses_as_they_are_pass(object_id):
    assert object_id_problem(object_id) is None


@pytest.mark.parametrize('object_id', ['', 'a b', 'a@b', 'tab\there', 'nul\x00', 'x' * 129, None, 7])
def test_object_ids_pyro_cannot_address_fail(object_id):
    assert object_id_problem(object_id)
