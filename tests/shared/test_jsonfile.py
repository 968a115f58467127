"""Bounded JSON reading: only regular files, a size cap, a nesting cap, one line per problem."""

import os
import time

import pytest

from rockit.camvirt.shared.jsonfile import MAX_BYTES, MAX_DEPTH, JsonFileError, read_json_file


def error_for(path):
    started = time.monotonic()
    with pytest.raises(JsonFileError) as raised:
        read_json_file(str(path), 'config')
    message = str(raised.value)
    assert '\n' not in message and len(message) < 300
    assert time.monotonic() - started < 5  # generous: the point is that it returns at all
    return message


def test_a_good_file_is_read(tmp_path):
    path = tmp_path / 'c.json'
    path.write_text('{"a": [1, {"b": null}]}')
    assert read_json_file(str(path), 'config') == {'a': [1, {'b': None}]}


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    path = tmp_path / 'fifo.json'
    os.mkfifo(path)
    assert error_for(path) == '{}: cannot read config: a FIFO, not a regular file'.format(path)


def test_devices_and_folders_are_refused(tmp_path):
    assert error_for('/dev/zero') == '/dev/zero: cannot read config: a character device, not a regular file'
    assert 'a directory, not a regular file' in error_for(tmp_path)


def test_a_missing_file_says_so(tmp_path):
    assert error_for(tmp_path / 'none.json').endswith('cannot read config: No such file or directory')


def test_a_large_file_is_refused_unread(tmp_path):
    path = tmp_path / 'big.json'
    path.write_text('[' + '1,' * MAX_BYTES + '1]')
    assert error_for(path) == '{}: config is larger than 1024 KiB'.format(path)


@pytest.mark.parametrize('levels', [MAX_DEPTH + 1, 100000])
def test_deep_nesting_is_refused(tmp_path, levels):
    path = tmp_path / 'deep.json'
    path.write_text('[' * levels + ']' * levels)
    assert error_for(path) == '{}: config is nested deeper than {} levels'.format(path, MAX_DEPTH)


def test_broken_json_and_binary_name_the_place(tmp_path):
    path = tmp_path / 'broken.json'
    path.write_text('{"a": }')
    assert 'config is not valid JSON: Expecting value: line 1 column 7' in error_for(path)
    path.write_bytes(b'\xff\xfe')
    assert error_for(path).endswith('config is not UTF-8 text (byte 0)')
