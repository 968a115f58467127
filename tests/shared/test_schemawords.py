"""Schema problems in the project's own words: the same lines whatever jsonschema version words them
(3.2 on Rocky 9, 4.x elsewhere), short whatever the input."""

import jsonschema
import pytest

from rockit.camvirt.shared.schemawords import NAME_PATTERN, key_path, schema_problems

SCHEMA = {
    'type': 'object', 'required': ['name', 'seconds'], 'additionalProperties': False,
    'properties': {
        'name': {'type': 'string', 'minLength': 1, 'maxLength': 8},
        'seconds': {'type': 'number', 'minimum': 1, 'maximum': 60},
        'ratio': {'type': 'number', 'exclusiveMinimum': 0},
        'hosts': {'type': 'array', 'uniqueItems': True, 'minItems': 1, 'maxItems': 2},
        'map': {'type': 'object', 'minProperties': 1, 'maxProperties': 2, 'propertyNames': {'pattern': NAME_PATTERN},
                'additionalProperties': {'type': 'integer'}},
    },
}
CASES = [
    ({'seconds': 1}, [('name', 'required key is missing')]),
    ({'name': 'a', 'seconds': 1, 'colour': 1}, [('colour', 'unknown key')]),
    ({'name': '', 'seconds': 1}, [('name', 'must not be empty')]),
    ({'name': 'abcdefghij', 'seconds': 1}, [('name', 'has 10 characters, at most 8 allowed')]),
    ({'name': 'a', 'seconds': 0}, [('seconds', 'must be at least 1, not 0')]),
    ({'name': 'a', 'seconds': 61}, [('seconds', 'must be at most 60, not 61')]),
    ({'name': 'a', 'seconds': 1, 'ratio': 0}, [('ratio', 'must be more than 0, not 0')]),
    ({'name': 'a', 'seconds': '1'}, [('seconds', 'must be a number, not a string')]),
    ({'name': 'a', 'seconds': True}, [('seconds', 'must be a number, not true or false')]),
    ({'name': 'a', 'seconds': 1, 'hosts': []}, [('hosts', 'must not be empty')]),
    ({'name': 'a', 'seconds': 1, 'hosts': [1, 2, 3]}, [('hosts', 'has 3 items, at most 2 allowed')]),
    ({'name': 'a', 'seconds': 1, 'hosts': [1, 1]}, [('hosts', 'has an item more than once')]),
    ({'name': 'a', 'seconds': 1, 'map': {}}, [('map', 'must not be empty')]),
    ({'name': 'a', 'seconds': 1, 'map': {'a': 1, 'b': 2, 'c': 3}}, [('map', 'has 3 entries, at most 2 allowed')]),
    ({'name': 'a', 'seconds': 1, 'map': {'a b': 1}}, [('map', "'a b' is not a name of 1-64 letters, digits and ._+-")]),
    ({'name': 'a', 'seconds': 1, 'map': {'a': 'x'}}, [('map.a', 'must be an integer, not a string')]),
    ([], [('(top level)', 'must be an object, not a list')]),
]


@pytest.mark.parametrize('data,expected', CASES, ids=[str(c[0])[:40] for c in CASES])
def test_each_rule_in_our_words(data, expected):
    assert schema_problems(jsonschema.Draft7Validator(SCHEMA), data) == expected


def test_no_library_wording_leaks():
    library_words = ('is a required property', 'was unexpected', 'should be non-empty', 'does not have enough',
                     'is not of type', 'less than the minimum', 'is too long', 'has non-unique elements')
    for data, _ in CASES:
        for _, message in schema_problems(jsonschema.Draft7Validator(SCHEMA), data):
            assert not any(words in message for words in library_words), message


def test_names_and_values_are_shown_short_and_on_one_line():
    problems = schema_problems(jsonschema.Draft7Validator(SCHEMA), {'name': 'a', 'seconds': 1, 'x\n' * 1000: 1})
    assert len(problems) == 1
    key, message = problems[0]
    assert '\n' not in key and len(key) < 60 and message == 'unknown key'
    assert key_path(['domains', 'cam.1', 'c']) == "domains.'cam.1'.c"
    assert key_path([]) == '(top level)'
