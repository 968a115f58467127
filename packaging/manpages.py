"""The manual pages camvirtd(8) and camvirt(1), made from the commands' own argument parsers with
argparse-manpage, so that they say what `--help` says; the sections a parser does not know (files,
environment, exit status, see also) come from man/<page>.include. camvirtd.json(5) is written by
hand (man/camvirtd.json.5): tests/test_manpages.py checks it names every key of the config schema.

    python packaging/manpages.py           # rewrite man/camvirtd.8 and man/camvirt.1
    python packaging/manpages.py --check   # exit 1 when they are not what the parsers make now

Made at development time and committed, not at package build: the parsers import libvirt, Pyro4
and rich, which a build host need not have, and the pages then never depend on the build host's
argparse-manpage (EPEL's differs between Rocky 9 and 10).
"""

import argparse
import os
import sys

from argparse_manpage.manpage import Manpage

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# No date or version in the pages: they would change with every commit, not with the parsers.
HEADER = '.TH {name} "{section}" "" "camvirtd" "{title}"'


def pages():
    """{file name: (parser, section, manual title, one-line description)}."""
    from rockit.camvirt.client.cli import build_parser as client_parser
    from rockit.camvirt.daemon.service import build_parser as daemon_parser
    return {
        'camvirtd.8': (daemon_parser(), 8, 'System Administration',
                       'camera VM management daemon of a rockit data-acquisition host'),
        'camvirt.1': (client_parser(), 1, 'User Commands', 'command line client of camvirtd'),
    }


def render(file_name, parser, section, title, description):
    include = os.path.join(REPO, 'man', file_name + '.include')
    data = {'manual_section': section, 'manual_title': title, 'description': description,
            'project_name': 'camvirtd'}
    if os.path.exists(include):
        data['include'] = include
    text = str(Manpage(parser, _data=data))
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith('.TH '))
    lines[header] = HEADER.format(name=parser.prog.upper(), section=section, title=title)
    return '\n'.join(lines) + '\n'


def main(argv=None):
    options = argparse.ArgumentParser(description='make or check the manual pages')
    options.add_argument('--check', action='store_true', help='exit 1 when a page is not up to date')
    args = options.parse_args(argv)
    stale = []
    for file_name, (parser, section, title, description) in pages().items():
        path = os.path.join(REPO, 'man', file_name)
        text = render(file_name, parser, section, title, description)
        current = open(path).read() if os.path.exists(path) else None
        if current != text:
            stale.append(file_name)
            if not args.check:
                with open(path, 'w') as f:
                    f.write(text)
    if args.check and stale:
        print('manual pages out of date: {} (make man)'.format(', '.join(stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
