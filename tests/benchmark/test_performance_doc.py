"""docs/performance.md's figures are bench/results.json's, rendered by bench/report.py, never copied by
hand: the committed page and results agree, a changed figure is caught, bad input gets one line."""

import json
import os
import re
import subprocess
import sys

import pytest

from testworld.support import REPO

REPORT = os.path.join(REPO, 'bench', 'report.py')
RESULTS = os.path.join(REPO, 'bench', 'results.json')
PAGE = os.path.join(REPO, 'docs', 'performance.md')


def run_report(*args):
    return subprocess.run([sys.executable, REPORT] + list(args), capture_output=True, text=True, timeout=60,
                          cwd=REPO)


def read(path):
    with open(path) as f:
        return f.read()


def generated_and_written(report, page):
    head, rest = page.split(report.BEGIN, 1)
    section, tail = rest.split(report.END, 1)
    return section, head + tail


def figures_of(value):
    """Every figure with two decimals in the results: integers (0, 68) and one decimal (0.5 s, the bench's
    margin) are too common in prose to look for."""
    if isinstance(value, dict):
        return {f for item in value.values() for f in figures_of(item)}
    if isinstance(value, list):
        return {f for item in value for f in figures_of(item)}
    if isinstance(value, float) and re.fullmatch(r'\d+\.\d\d+', str(value)):
        return {str(value)}
    return set()


def test_the_committed_page_shows_the_committed_results():
    result = run_report('--check')
    assert (result.returncode, result.stderr) == (0, ''), result.stderr


def test_the_generated_section_is_render_of_the_results(report):
    results = json.loads(read(RESULTS))
    section, _ = generated_and_written(report, read(PAGE))
    assert section == '\n' + report.render(results)
    assert results['measured']['commit'] in section and results['measured']['at'][:10] in section


def test_the_written_part_holds_no_measured_figure(report):
    _, written = generated_and_written(report, read(PAGE))
    figures = figures_of(json.loads(read(RESULTS)))
    assert len(figures) > 40  # the search finds the results' figures
    copied = sorted(f for f in figures if re.search(r'(?<![\d.]){}(?![\d.])'.format(re.escape(f)), written))
    assert copied == []


def test_a_figure_changed_by_hand_fails_the_check_and_a_run_puts_it_back(report, tmp_path):
    page = read(PAGE)
    section, _ = generated_and_written(report, page)
    figure = json.loads(read(RESULTS))['readiness_lag_ms']['1']['p99']
    assert section.count(' {} '.format(figure)) >= 1
    edited = page.replace(section, section.replace(' {} '.format(figure), ' 1.0 ', 1))
    copy = tmp_path / 'performance.md'
    copy.write_text(edited)
    result = run_report('--check', '--page', str(copy))
    assert result.returncode == 1
    assert result.stderr.count('\n') == 1 and str(copy) in result.stderr and 'differ' in result.stderr
    assert copy.read_text() == edited  # --check changes nothing
    assert run_report('--page', str(copy)).returncode == 0
    assert copy.read_text() == page
    assert run_report('--check', '--page', str(copy)).returncode == 0


def test_a_miss_is_marked(report):
    results = json.loads(read(RESULTS))
    results['readiness_lag_ms']['8']['p99'] = report.LAG_P99_MS + 1
    results['under_attack']['idle']['vm_changed'] = True
    rendered = report.render(results)
    assert '{} {}'.format(report.LAG_P99_MS + 1, report.MISSED) in rendered
    assert 'yes ' + report.MISSED in rendered


def test_an_attack_without_description_shows_its_key_and_one_with_shows_it(report):
    results = json.loads(read(RESULTS))
    for figures in results['under_attack'].values():
        figures.pop('description', None)
    results['under_attack']['idle']['description'] = 'nothing at all | yet'
    rendered = report.render(results)
    assert '| nothing at all \\| yet |' in rendered
    assert all('| {} |'.format(name) in rendered for name in list(results['under_attack'])[1:])


def test_the_errors_callers_met_are_named_beside_their_count(report):
    results = json.loads(read(RESULTS))
    worst = next(name for name in results['under_attack'] if name.startswith(report.WORST_CASE))
    results['under_attack'][worst].update(dashboard_errors=7, dashboard_error_types=['TimeoutError'],
                                          control_errors=1, control_error_types=['ConnectionClosedError'])
    assert '| 1 / 7 (ConnectionClosedError, TimeoutError) **missed** |' in report.render(results)


def bad_inputs(tmp_path):
    page = tmp_path / 'performance.md'
    page.write_text(read(PAGE))
    unmarked = tmp_path / 'unmarked.md'
    unmarked.write_text('# Performance\n\nno markers\n')
    not_json = tmp_path / 'not.json'
    not_json.write_text('{"readiness_lag_ms": ')
    a_list = tmp_path / 'list.json'
    a_list.write_text('[1, 2]')
    partial = tmp_path / 'partial.json'
    partial.write_text('{"measured": {}, "readiness_lag_ms": {}}')
    missing = tmp_path / 'missing.json'
    return {
        'missing results': (['--results', str(missing), '--page', str(page)], missing),
        'results not JSON': (['--results', str(not_json), '--page', str(page)], not_json),
        'results not an object': (['--results', str(a_list), '--page', str(page)], a_list),
        'results without figures': (['--results', str(partial), '--page', str(page)], partial),
        'page without markers': (['--page', str(unmarked)], unmarked),
        'missing page': (['--page', str(tmp_path / 'none.md')], tmp_path / 'none.md'),
    }


@pytest.mark.parametrize('case', ['missing results', 'results not JSON', 'results not an object',
                                  'results without figures', 'page without markers', 'missing page'])
@pytest.mark.parametrize('check', [True, False])
def test_bad_input_gets_one_line_naming_the_file_and_changes_nothing(tmp_path, case, check):
    args, named = bad_inputs(tmp_path)[case]
    before = {path: path.read_text() for path in tmp_path.iterdir()}
    result = run_report(*(args + (['--check'] if check else [])))
    assert result.returncode not in (0, 1)  # 1 is --check's "differs"
    assert 'Traceback' not in result.stderr and result.stderr.count('\n') == 1, result.stderr
    assert result.stderr.startswith('report.py: {}: '.format(named))
    assert {path: path.read_text() for path in tmp_path.iterdir()} == before
