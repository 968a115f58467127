"""The manual pages say what the code does: camvirtd(8) and camvirt(1) are what the argument parsers
make now (packaging/manpages.py), and camvirtd.json(5) names every key of the config schema."""

import os
import re
import subprocess
import sys

import pytest

from rockit.camvirt.shared.config import CONFIG_SCHEMA
from testworld.support import REPO

argparse_manpage = pytest.importorskip('argparse_manpage')


@pytest.mark.skipif(sys.version_info < (3, 10), reason="argparse before 3.10 titles options differently: "
                    "the committed pages are made with the development venv's Python")
def test_pages_are_what_the_parsers_make_now():
    result = subprocess.run([sys.executable, os.path.join(REPO, 'packaging', 'manpages.py'), '--check'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_check_notices_a_stale_page(tmp_path, monkeypatch):
    sys.path.insert(0, os.path.join(REPO, 'packaging'))
    try:
        import manpages
    finally:
        sys.path.remove(os.path.join(REPO, 'packaging'))
    (tmp_path / 'man').mkdir()
    monkeypatch.setattr(manpages, 'REPO', str(tmp_path))
    assert manpages.main(['--check']) == 1  # none there
    assert manpages.main([]) == 0
    assert manpages.main(['--check']) == 0
    page = tmp_path / 'man' / 'camvirt.1'
    page.write_text(page.read_text().replace('force', 'farce'))
    assert manpages.main(['--check']) == 1


def page_text(name):
    with open(os.path.join(REPO, 'man', name)) as f:
        return f.read()


def test_config_page_names_every_key_and_no_other():
    page = page_text('camvirtd.json.5')
    documented = set(re.findall(r'^\.B (\w+)$', page, re.M))
    assert documented == set(CONFIG_SCHEMA['properties'])
    required = page.split('.SH REQUIRED KEYS')[1].split('.SH OPTIONAL KEYS')[0]
    assert set(re.findall(r'^\.B (\w+)$', required, re.M)) == set(CONFIG_SCHEMA['required'])


def test_pages_cross_reference_each_other():
    for name, others in (('camvirtd.8', ['camvirt', 'camvirtd.json']), ('camvirt.1', ['camvirtd', 'camvirtd.json']),
                         ('camvirtd.json.5', ['camvirtd', 'camvirt'])):
        see_also = page_text(name).split('.SH SEE ALSO')[1]
        for other in others:
            assert '.BR {} ('.format(other) in see_also, (name, other)
