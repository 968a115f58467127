"""The one version (rockit/camvirt/version.py): the commit's UTC time, from _version.py when installed,
from git in a clone, 0+unknown in a copy that has neither."""

import os
import re
import shutil
import subprocess
import sys

import pytest

import rockit.camvirt
from rockit.camvirt.shared.version import UNKNOWN, version_from_git
from testworld.support import REPO


def git_commit_time():
    return subprocess.run(['git', 'log', '-1', '--format=%cd', '--date=format-local:%Y%m%d%H%M%S'], cwd=REPO,
                          env=dict(os.environ, TZ='UTC'), capture_output=True, text=True, check=True).stdout.strip()


def test_a_clone_has_its_commit_time():
    assert re.fullmatch(r'\d{14}', rockit.camvirt.__version__)
    assert rockit.camvirt.__version__ == git_commit_time()


def test_outside_a_clone_git_has_no_answer(tmp_path):
    assert version_from_git(str(tmp_path)) is None


def version_of_copy(folder, generated=None):
    """__version__ as a copy of the package in `folder` (outside any clone) reports it."""
    package = folder / 'rockit' / 'camvirt'
    shutil.copytree(os.path.join(REPO, 'rockit', 'camvirt'), str(package),
                    ignore=shutil.ignore_patterns('__pycache__', '_version.py'))
    if generated is not None:
        (package / '_version.py').write_text("VERSION = '{}'\n".format(generated))
    return subprocess.run([sys.executable, '-c', 'import rockit.camvirt as c; print(c.__version__)'],
                          env=dict(os.environ, PYTHONPATH=str(folder)), cwd=str(folder), capture_output=True,
                          text=True, check=True).stdout.strip()


def test_an_installed_copy_reports_the_version_it_was_built_with(tmp_path):
    assert version_of_copy(tmp_path, '20260102030405') == '20260102030405'


def test_a_copy_with_neither_says_unknown(tmp_path):
    assert version_of_copy(tmp_path) == UNKNOWN


def test_other_attributes_are_still_missing():
    with pytest.raises(AttributeError):
        rockit.camvirt.no_such_thing  # noqa: B018
