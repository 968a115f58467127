"""Schema problems in the project's own words, the same on every jsonschema camvirtd runs with (3.2 on
Rocky 9, 4.x elsewhere, which word several rules differently), one short line each whatever the
input: names and values are shown truncated and escaped."""

# Domain names, camera ids (and so every name a state file holds): what libvirt and a shell take
# without quoting.
NAME_PATTERN = '^[A-Za-z0-9._+-]{1,64}$'
PATTERN_WORDS = {NAME_PATTERN: 'a name of 1-64 letters, digits and ._+-'}
SHOWN_CHARS = 40
# Unknown keys named one by one, at most; the rest are counted.
MAX_KEYS_SHOWN = 10

_TYPE_WORDS = {'object': 'an object', 'array': 'a list', 'string': 'a string', 'number': 'a number',
               'integer': 'an integer', 'boolean': 'true or false', 'null': 'null'}


def shown(value):
    """A value as it appears in a message: repr, cut to SHOWN_CHARS (a 5 MB string stays one line)."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + '...'


def _key(part):
    part = str(part)
    printable = part.isprintable() and len(part) <= SHOWN_CHARS
    return part if printable and '.' not in part and ' ' not in part else shown(part)


def key_path(parts):
    """'domains.cam1.cam1' for a path of keys; '(top level)' for the document itself."""
    return '.'.join(_key(p) for p in parts) or '(top level)'


def type_name(value):
    if value is None:
        return 'null'
    for python_type, name in ((bool, 'boolean'), (dict, 'object'), (list, 'array'), (str, 'string'),
                              (int, 'integer'), (float, 'number')):
        if isinstance(value, python_type):
            return name
    return type(value).__name__


def _expected_types(types):
    types = [types] if isinstance(types, str) else list(types)
    return ' or '.join(_TYPE_WORDS.get(t, t) for t in types)


def _type(error):
    return 'must be {}, not {}'.format(_expected_types(error.validator_value),
                                       _TYPE_WORDS.get(type_name(error.instance), type_name(error.instance)))


def _size(error):
    """min/maxProperties, min/maxItems, min/maxLength."""
    limit, validator, instance = error.validator_value, error.validator, error.instance
    units = 'characters' if validator.endswith('Length') else 'items' if validator.endswith('Items') else 'entries'
    if validator.startswith('min'):
        if limit == 1:
            return 'must not be empty'
        return 'must have at least {} {}'.format(limit, units)
    return 'has {} {}, at most {} allowed'.format(len(instance), units, limit)


def _bound(words):
    def describe(error):
        return 'must be {} {}, not {}'.format(words, shown(error.validator_value), shown(error.instance))
    return describe


def _pattern(error):
    words = PATTERN_WORDS.get(error.validator_value, 'in the form {}'.format(error.validator_value))
    return '{} is not {}'.format(shown(error.instance), words)


def _unique(_error):
    return 'has an item more than once'


_DESCRIBE = {
    'type': _type,
    'minProperties': _size, 'maxProperties': _size, 'minItems': _size, 'maxItems': _size,
    'minLength': _size, 'maxLength': _size,
    'minimum': _bound('at least'), 'maximum': _bound('at most'),
    'exclusiveMinimum': _bound('more than'), 'exclusiveMaximum': _bound('less than'),
    'pattern': _pattern,
    'uniqueItems': _unique,
}


def _known_keys(error):
    schema = error.schema
    return set(schema.get('properties', {}))


def describe(error):
    """[(key path, message)] for one jsonschema ValidationError."""
    path = list(error.absolute_path)
    if error.validator == 'required':
        instance = error.instance if isinstance(error.instance, dict) else {}
        return [(key_path(path + [name]), 'required key is missing')
                for name in error.validator_value if name not in instance]
    if error.validator == 'additionalProperties' and error.validator_value is False:
        known = _known_keys(error)
        unknown = [name for name in error.instance if name not in known]
        problems = [(key_path(path + [name]), 'unknown key') for name in unknown[:MAX_KEYS_SHOWN]]
        if len(unknown) > MAX_KEYS_SHOWN:
            problems.append((key_path(path), 'and {} more unknown keys'.format(len(unknown) - MAX_KEYS_SHOWN)))
        return problems
    if 'propertyNames' in error.schema_path:
        # The instance is the offending key itself; the path is its parent object's.
        return [(key_path(path), '{} is not {}'.format(
            shown(error.instance), PATTERN_WORDS.get(error.schema.get('pattern'), 'a valid name')))]
    describer = _DESCRIBE.get(error.validator)
    if describer is None:
        return [(key_path(path), 'breaks the rule {!r} of the schema'.format(error.validator))]
    return [(key_path(path), describer(error))]


def schema_problems(validator, data):
    """(key path, message) for each way `data` breaks the validator's schema, sorted by key path,
    each once."""
    problems = set()
    for error in validator.iter_errors(data):
        problems.update(describe(error))
    return sorted(problems)
