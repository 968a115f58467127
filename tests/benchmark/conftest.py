"""bench/report.py as a module, for tests that call render() (bench/ is scripts, not a package)."""

import importlib.util
import os

import pytest

from testworld.support import REPO

REPORT = os.path.join(REPO, 'bench', 'report.py')


@pytest.fixture(scope='session')
def report():
    spec = importlib.util.spec_from_file_location('report', REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
