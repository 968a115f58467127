"""bench/report.py and bench/attack.py as modules, for tests that call them (bench/ is scripts, not a package)."""

import importlib.util
import os

import pytest

from testworld.support import REPO


def _bench_module(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, 'bench', name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def report():
    return _bench_module('report')


@pytest.fixture(scope='session')
def attack():
    return _bench_module('attack')
