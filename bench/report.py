#!/usr/bin/env python3
"""docs/performance.md's figures, from bench/results.json: the page's generated section, rewritten.

    bench/report.py [--results PATH] [--page PATH] [--check]

Only the lines between BEGIN and END are the generated section; the rest of the page is hand-written.
--check changes nothing: it exits 1 if the section differs from what the results give. render() is a
plain function of the results (the standard library only), so the test of the page can call it.
"""

import argparse
import json
import os
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, 'bench', 'results.json')
PAGE = os.path.join(REPO, 'docs', 'performance.md')
BEGIN = '<!-- begin generated: bench/report.py from bench/results.json -->'
END = '<!-- end generated -->'
MISSED = '**missed**'

# Targets (docs/performance.md says why each is what it is).
LAG_P99_MS = 50                 # readiness and shutdown lag, p99, at every N
PASSTHROUGH_RATIO = 2.5         # p50 through camvirtd / p50 straight to camd
HUNG_BOUND_MS = 1500            # a hung camera's query fails within camera_timeout (1 s in the bench) + 0.5 s
HUNG_P99_RATIO = 1.2            # the other camera's p99 with a hung camera / without
RSS_MB = 60                     # camvirtd's peak RSS under load
FD_GROWTH = 0                   # open files gained over the fd test's queries
ATTACK_P99_MS = 100             # a caller's p99 under each attack
ATTACK_RSS_MB = 80              # camvirtd's peak RSS under each attack (strictly below)
# Under the worst case (1,024 connections parsing without pause) the dashboard's host is one address of 33
# taking turns for one parse slot: it waits, and may time out; the control machines keep their targets.
WORST_CASE = 'worst case'
WIDTH = 110  # prose lines, as the hand-written pages wrap them (tables stay one line a row)


class NotResults(Exception):
    """The results are not what bench/bench.py writes."""


def number(value):
    """A figure as the results hold it: 1306.0 as 1306, None as a dash."""
    if value is None:
        return '-'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def checked(text, ok):
    return text if ok else '{} {}'.format(text, MISSED)


def at_most(value, target):
    return value is not None and value <= target


def pair(figures, first, second):
    return '{} / {}'.format(number(figures.get(first)), number(figures.get(second)))


def wrapped(text):
    """A paragraph or a bullet, wrapped; a bullet's lines after the first indented under its text."""
    indent = '  ' if text.startswith('- ') else ''
    return textwrap.fill(text, WIDTH, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def cell(text):
    return str(text).replace('|', '\\|')


def by_size(figures):
    """Sizes in numeric order: results.json keys are strings."""
    return sorted(figures, key=lambda key: (len(key), key))


def heading(measured):
    """When and on what: the section's first lines."""
    when = measured.get('at', 'an unknown time')
    if 'T' in when:
        when = when[:16].replace('T', ' ') + ' UTC'
    plan = measured.get('plan') or {}
    lines = ['## Figures of {} (commit {})'.format(when, measured.get('commit', 'unknown')), '']
    sizes = ', '.join(number(n) for n in plan.get('sizes', []))
    on = 'Measured on commit {} with Python {} on {} CPUs, plan {}'.format(
        measured.get('commit', 'unknown'), measured.get('python', 'unknown'), number(measured.get('cpus')),
        plan.get('name', 'unknown'))
    if sizes:
        on += ' (N = {} domains, {} runs each)'.format(sizes, number(plan.get('runs')))
    on += '. A figure that misses its target is marked {}.'.format(MISSED)
    if plan.get('name') == 'once':
        on += ' This plan measures each figure once, to prove it runs: these are no figures to publish.'
    return lines + [on, '']


def lag_section(results):
    sizes = by_size(results['readiness_lag_ms'])
    lines = ['### Readiness and shutdown lag', '',
             '| figure | {} | target |'.format(' | '.join('N={}'.format(n) for n in sizes)),
             '|---|{}---|'.format('---|' * len(sizes))]
    for kind, label in (('readiness_lag_ms', 'readiness lag'), ('shutdown_lag_ms', 'shutdown lag')):
        cells = [checked(pair(results[kind][n], 'p50', 'p99'), at_most(results[kind][n]['p99'], LAG_P99_MS))
                 for n in sizes]
        lines.append('| {} p50 / p99 (ms) | {} | p99 <= {} |'.format(label, ' | '.join(cells), LAG_P99_MS))
    base = results['baseline']
    if base:
        lines += ['', '- The 1 s polling loop at N={}: readiness lag p50 / p99 {} ms, shutdown lag {} ms; camvirtd '
                  'notices ready VMs {}x and stopped VMs {}x sooner (p50).'.format(
                      base['domains'], pair(base['readiness_lag_ms'], 'p50', 'p99'),
                      pair(base['shutdown_lag_ms'], 'p50', 'p99'), number(base['ratio']['readiness_p50']),
                      number(base['ratio']['shutdown_p50']))]
    return lines + ['']


def passthrough_section(results):
    lines = ['### Passthrough', '',
             '| clients | p50 through camvirtd (ms) | p50 direct to camd (ms) | ratio (target <= {}) | requests/s '
             'through / direct | errors |'.format(PASSTHROUGH_RATIO),
             '|---|---|---|---|---|---|']
    for clients in by_size(results['passthrough']):
        p = results['passthrough'][clients]
        lines.append('| {} | {} | {} | {} | {} | {} |'.format(
            clients, number(p['p50_ms']), number(p['direct_p50_ms']),
            checked(number(p['p50_ratio']), at_most(p['p50_ratio'], PASSTHROUGH_RATIO)),
            pair(p, 'rps', 'direct_rps'), checked(number(p['errors']), p['errors'] == 0)))
    return lines + ['']


def bullets(results, plan):
    one, hung, res = results['one_camera'], results['hung_camera'], results['resources']
    hung_clients = (plan.get('hung') or [None])[0]
    with_clients = ' with {} clients'.format(hung_clients) if hung_clients else ''
    bound = 'yes' if hung['bound_ok'] else 'no'
    return [
        '- One camera, {} dashboards at once (each keeping its proxy): p50 {} ms, p99 {} ms, {} queries/s, {} '
        'errors, {} camd calls per query.'.format(
            one['clients'], number(one['p50_ms']), number(one['p99_ms']), number(one['rps']),
            checked(number(one['errors']), one['errors'] == 0), number(one['camd_calls_per_query'])),
        '- Hung camera (its VM running): every query for it raised `TimeoutError` within its bound: {} (slowest '
        '{} ms, target <= {} ms); the other camera\'s p99{} {} -> {} ms, ratio {} (target <= {}).'.format(
            checked(bound, hung['bound_ok']), checked(number(hung['hung_max_ms']),
                                                      at_most(hung['hung_max_ms'], HUNG_BOUND_MS)),
            HUNG_BOUND_MS, with_clients, number(hung['p99_ms_without']), number(hung['p99_ms_with']),
            checked(number(hung['p99_ratio']), at_most(hung['p99_ratio'], HUNG_P99_RATIO)), HUNG_P99_RATIO),
        '- Resources: camvirtd RSS {} MB idle, {} MB at most under load (target <= {} MB); threads {} idle, {} '
        'under load; open files grew by {} (target {}) over {} queries, each on a fresh connection ({} '
        'errors).'.format(
            number(res['rss_mb_idle']), checked(number(res['rss_mb']), at_most(res['rss_mb'], RSS_MB)), RSS_MB,
            number(res['threads_idle']), number(res['threads']),
            checked(number(res['fd_growth']), res['fd_growth'] == FD_GROWTH), FD_GROWTH, number(res['fd_queries']),
            number(res.get('fd_query_errors'))),
        '']


def attack_row(name, r):
    worst = name.startswith(WORST_CASE)
    control = checked(pair(r, 'control_p50_ms', 'control_p99_ms'), at_most(r['control_p99_ms'], ATTACK_P99_MS))
    dashboard = pair(r, 'dashboard_p50_ms', 'dashboard_p99_ms')
    if not worst:
        dashboard = checked(dashboard, at_most(r['dashboard_p99_ms'], ATTACK_P99_MS))
    errors_ok = r['control_errors'] == 0 and (worst or r['dashboard_errors'] == 0)
    errors = checked('{} / {}{}'.format(number(r['control_errors']), number(r['dashboard_errors']), error_kinds(r)),
                     errors_ok)
    rss = checked(number(r['rss_mb_peak']), r['rss_mb_peak'] < ATTACK_RSS_MB)
    changed = checked('yes' if r['vm_changed'] else 'no', not r['vm_changed'])
    description = r.get('description') or name
    return '| {} | {} | {} | {} | {} | {} | {} |'.format(cell(description), control, dashboard, errors, rss,
                                                         number(r['threads_peak']), changed)


def error_kinds(r):
    """Which errors the callers met, e.g. ' (TimeoutError)'; none in results of before they were kept."""
    kinds = sorted(set(r.get('control_error_types', [])) | set(r.get('dashboard_error_types', [])))
    return ' ({})'.format(', '.join(kinds)) if kinds else ''


def attack_section(results):
    attacks = results['under_attack']
    lines = ['### Under attack', '',
             'Targets: p99 <= {} ms (the dashboard\'s under the worst case: none), no errors (the dashboard\'s '
             'under the worst case: any), peak RSS < {} MB, no VM changed.'.format(ATTACK_P99_MS, ATTACK_RSS_MB), '',
             '| attack | control p50 / p99 (ms) | dashboard p50 / p99 (ms) | errors control / dashboard | peak RSS '
             '(MB) | threads | VM changed |',
             '|---|---|---|---|---|---|---|']
    lines += [attack_row(name, figures) for name, figures in attacks.items()]
    failed = ['- {}: the attack failed ({}), its figures are none. {}'.format(
        cell(figures.get('description') or name), figures['attack_failed'], MISSED)
        for name, figures in attacks.items() if figures.get('attack_failed')]
    return lines + ([''] + failed if failed else []) + ['']


def render(results):
    """The Markdown of the page's generated section (without its markers), from the results."""
    try:
        measured = results.get('measured') or {}
        lines = heading(measured) + lag_section(results) + passthrough_section(results)
        lines += bullets(results, measured.get('plan') or {}) + attack_section(results)
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise NotResults('{}: {}'.format(type(e).__name__, e)) from None
    text = '\n'.join(line if line.startswith(('|', '#')) else wrapped(line) for line in lines)
    return text.rstrip('\n') + '\n'


def replaced(page, section):
    """The page with its generated section replaced; ValueError when its markers are not there once each."""
    if page.count(BEGIN) != 1 or page.count(END) != 1 or page.index(BEGIN) > page.index(END):
        raise ValueError('needs one {} and one {} after it'.format(BEGIN, END))
    head, rest = page.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return '{}{}\n{}{}{}'.format(head, BEGIN, section, END, tail)


def shown(path):
    relative = os.path.relpath(os.path.abspath(path), REPO)
    return path if relative.startswith('..') else relative


class Failure(Exception):
    """Bad input: its one-line message names the file and what is wrong."""


def read(path):
    try:
        with open(path, encoding='utf-8') as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise Failure('{}: cannot read: {}'.format(shown(path), getattr(e, 'strerror', None) or e))


def write(path, text):
    """Whole or not at all: a temporary file beside it, renamed over it."""
    temporary = path + '.tmp'
    try:
        with open(temporary, 'w', encoding='utf-8') as f:
            f.write(text)
        os.replace(temporary, path)
    except OSError as e:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise Failure('{}: cannot write: {}'.format(shown(path), e.strerror or e))


def section_of(results_path):
    try:
        results = json.loads(read(results_path))
    except ValueError as e:
        raise Failure('{}: not JSON: {}'.format(shown(results_path), e))
    try:
        if not isinstance(results, dict):
            raise NotResults('not a JSON object')
        return render(results)
    except NotResults as e:
        raise Failure('{}: not what bench/bench.py writes ({})'.format(shown(results_path), e))


def report(results_path, page_path, check):
    """0, or 1 when checking a page whose generated section differs from the results."""
    section = section_of(results_path)
    page = read(page_path)
    try:
        updated = replaced(page, section)
    except ValueError as e:
        raise Failure('{}: {}'.format(shown(page_path), e))
    if check:
        if updated == page:
            return 0
        print('report.py: {}: its generated figures differ from {} (run bench/report.py)'.format(
            shown(page_path), shown(results_path)), file=sys.stderr)
        return 1
    if updated != page:
        write(page_path, updated)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--results', default=RESULTS, help='the results (default bench/results.json)')
    parser.add_argument('--page', default=PAGE, help='the page (default docs/performance.md)')
    parser.add_argument('--check', action='store_true',
                        help="change nothing; exit 1 if the page's generated section differs from the results")
    args = parser.parse_args(argv)
    try:
        return report(args.results, args.page, args.check)
    except Failure as e:
        print('report.py: {}'.format(e), file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
