"""The documentation cannot drift from the code: every `camvirt ...`, `camvirtd ...` and `make ...`
that README.md, NEWS.md and docs/*.md name (in code spans and code blocks) exists, with its flags
(`--help` of that command shows them; a make target is a rule of the Makefile, a VAR= one it reads),
and every page links where it says."""

import argparse
import functools
import glob
import os
import re
import subprocess
import sys

import pytest

from rockit.camvirt.client.cli import build_parser
from testworld.support import REPO

PAGES = sorted([os.path.join(REPO, 'README.md'), os.path.join(REPO, 'NEWS.md')]
               + glob.glob(os.path.join(REPO, 'docs', '*.md')))
# What a command line stops at: a comment, a pipe, a redirection, the end of a sentence in a table.
END = re.compile(r'\s(#|\||>|&&|;)')


def code_texts(path):
    """The text of every code span and every line of every fenced code block of a page."""
    with open(path) as f:
        text = f.read()
    blocks = re.findall(r'^```[^\n]*\n(.*?)^```', text, re.M | re.S)
    texts = [line for block in blocks for line in block.splitlines()]
    prose = re.sub(r'^```[^\n]*\n.*?^```', '', text, flags=re.M | re.S)
    texts += re.findall(r'`([^`\n]+)`', prose)
    return texts


def invocations(program):
    """{(page, words)}: the words after each `program` in the pages' code, up to a comment or pipe."""
    found = set()
    pattern = re.compile(r'(?:^|[\s(=$])(?:\./)?{}(?![\w@.-])((?:\s+[^\s`]+)*)'.format(re.escape(program)))
    for page in PAGES:
        for text in code_texts(page):
            text = END.split(' ' + text, maxsplit=1)[0][1:]
            for match in pattern.finditer(text):
                words = tuple(w.strip('[]().,:') for w in match.group(1).split())
                found.add((os.path.relpath(page, REPO), words))
    return found


@functools.cache
def camvirt_help(*words):
    result = subprocess.run([sys.executable, os.path.join(REPO, 'camvirt')] + list(words) + ['--help'],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    return result


def subcommands():
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return tuple(commands.choices)


SUBCOMMANDS = subcommands()
# Code spans that quote a message rather than show a command: (page, words after camvirt).
NOT_COMMANDS = set()


def test_docs_name_camvirt_commands():
    assert len(invocations('camvirt')) > 20  # the extraction finds what the pages show


@pytest.mark.parametrize('page,words', sorted(invocations('camvirt')))
def test_every_camvirt_command_in_the_docs_exists(page, words):
    subcommand = next((w for w in words if not w.startswith('-')), None)
    flags = [w.split('=')[0] for w in words if w.startswith('--')]
    if (page, words) in NOT_COMMANDS:
        return
    assert subcommand in SUBCOMMANDS + (None,), '{}: camvirt has no command {}'.format(page, subcommand)
    args = [subcommand] if subcommand else []
    result = camvirt_help(*args)
    assert (result.returncode, result.stderr) == (0, ''), (page, words, result.stderr)
    for flag in flags:
        assert flag in result.stdout, '{}: camvirt {} has no {}'.format(page, ' '.join(args), flag)


@functools.cache
def camvirtd_help():
    return subprocess.run([sys.executable, os.path.join(REPO, 'camvirtd'), '--help'], capture_output=True,
                          text=True, timeout=60, cwd=REPO)


@pytest.mark.parametrize('page,words', sorted(invocations('camvirtd')))
def test_every_camvirtd_command_in_the_docs_exists(page, words):
    result = camvirtd_help()
    assert (result.returncode, result.stderr) == (0, '')
    for flag in [w.split('=')[0] for w in words if w.startswith('--')]:
        assert flag in result.stdout, '{}: camvirtd has no {}'.format(page, flag)


def make_rules():
    """Targets and variables of the Makefile and mk/*.mk."""
    text = ''
    for path in [os.path.join(REPO, 'Makefile')] + sorted(glob.glob(os.path.join(REPO, 'mk', '*.mk'))):
        with open(path) as f:
            text += f.read()
    targets = set()
    for line in re.findall(r'^([A-Za-z0-9_./ -]+):(?!=)', text, re.M):
        targets.update(line.split())
    variables = set(re.findall(r'\$\(([A-Z_0-9]+)\)', text)) | set(re.findall(r'^([A-Z_0-9]+)\s*[?:]?=', text, re.M))
    return targets, variables


def test_docs_name_make_targets():
    assert {words[0] for _, words in invocations('make') if words} >= {'run', 'test', 'rpm', 'install', 'bench'}


@pytest.mark.parametrize('page,words', sorted(invocations('make')))
def test_every_make_command_in_the_docs_is_a_target(page, words):
    targets, variables = make_rules()
    for word in words:
        if word.startswith('-'):
            continue
        if '=' in word:
            assert word.split('=')[0] in variables, '{}: make reads no {}'.format(page, word)
        else:
            assert word in targets, '{}: make has no target {}'.format(page, word)


def test_every_link_between_pages_resolves():
    for page in PAGES:
        with open(page) as f:
            text = f.read()
        for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', text):
            if target.startswith(('http://', 'https://')):
                continue
            assert os.path.exists(os.path.join(os.path.dirname(page), target)), '{}: {}'.format(page, target)


def test_the_readme_lists_every_docs_page_and_stays_short():
    with open(os.path.join(REPO, 'README.md')) as f:
        readme = f.read()
    for page in glob.glob(os.path.join(REPO, 'docs', '*.md')):
        assert '(docs/{})'.format(os.path.basename(page)) in readme, page
    assert len(readme.splitlines()) <= 120 and len(readme) <= 8000  # one to two pages
