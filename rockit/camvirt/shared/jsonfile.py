"""Reading the JSON files camvirtd and camvirt are given (config, registry files, state): only regular
files, at most MAX_BYTES, nested at most MAX_DEPTH deep, so that a FIFO, /dev/zero or a hostile file
costs a one-line error and nothing more."""

import json
import os
import stat

from .errors import CamvirtError

# Far above any real config, registry or state file (a few KB).
MAX_BYTES = 1024 * 1024
# A config is 3 levels deep; anything much deeper is not one of ours.
MAX_DEPTH = 32

_KINDS = [(stat.S_ISDIR, 'a directory'), (stat.S_ISFIFO, 'a FIFO'), (stat.S_ISCHR, 'a character device'),
          (stat.S_ISBLK, 'a block device'), (stat.S_ISSOCK, 'a socket')]


class JsonFileError(CamvirtError):
    """A file that cannot be used; the message is one line that starts with the file's path."""


def _kind(mode):
    for test, name in _KINDS:
        if test(mode):
            return name
    return 'not a regular file'


def read_bounded(path, what):
    """The bytes of the regular file at `path`; JsonFileError otherwise. `what` names the file's role
    in messages ('config', 'registry file')."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; a regular file ignores the flag.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0))
    except OSError as e:
        raise JsonFileError('{}: cannot read {}: {}'.format(path, what, e.strerror)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise JsonFileError('{}: cannot read {}: {}, not a regular file'.format(path, what, _kind(mode)))
    with os.fdopen(fd, 'rb') as f:
        try:
            data = f.read(MAX_BYTES + 1)
        except OSError as e:
            raise JsonFileError('{}: cannot read {}: {}'.format(path, what, e.strerror)) from None
    if len(data) > MAX_BYTES:
        raise JsonFileError('{}: {} is larger than {} KiB'.format(path, what, MAX_BYTES // 1024))
    return data


def depth(value):
    """How deeply `value` nests lists and objects (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse_json(data, path, what):
    """The JSON value in `data` (bytes), or JsonFileError naming the file and where it is broken."""
    try:
        value = json.loads(data.decode('utf-8'))
    except UnicodeDecodeError as e:
        raise JsonFileError('{}: {} is not UTF-8 text (byte {})'.format(path, what, e.start)) from None
    except RecursionError:
        raise JsonFileError('{}: {} is nested deeper than {} levels'.format(path, what, MAX_DEPTH)) from None
    except ValueError as e:
        raise JsonFileError('{}: {} is not valid JSON: {}'.format(path, what, e)) from None
    if depth(value) > MAX_DEPTH:
        raise JsonFileError('{}: {} is nested deeper than {} levels'.format(path, what, MAX_DEPTH))
    return value


def read_json_file(path, what):
    """The parsed JSON of a regular file of at most MAX_BYTES; JsonFileError with one line otherwise."""
    return parse_json(read_bounded(path, what), path, what)
