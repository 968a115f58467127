"""The benchmark runs end to end at tiny sizes and writes every figure the README promises (timings
are for `make bench` to report, not for tests to assert)."""

import json
import os
import subprocess
import sys

from testworld.support import REPO


def test_bench_smoke_writes_every_key(tmp_path):
    output = tmp_path / 'results.json'
    result = subprocess.run([sys.executable, os.path.join(REPO, 'bench', 'bench.py'), '--smoke',
                             '--output', str(output)], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(output.read_text())
    assert set(results) == {'readiness_lag_ms', 'shutdown_lag_ms', 'passthrough', 'hung_camera', 'resources',
                            'baseline', 'under_attack'}
    for kind in ('readiness_lag_ms', 'shutdown_lag_ms'):
        assert set(results[kind]) == {'1', '2'}
        assert all(set(figures) >= {'p50', 'p99'} for figures in results[kind].values())
    for figures in results['passthrough'].values():
        assert figures['errors'] == 0 and figures['rps'] > 0 and figures['p50_ratio'] > 0
    assert results['hung_camera']['bound_ok'] is True
    assert set(results['resources']) >= {'rss_mb', 'threads', 'fd_growth'}
    assert set(results['baseline']) >= {'readiness_lag_ms', 'shutdown_lag_ms', 'ratio'}
    assert 'camvirtd benchmark' in result.stdout
    assert list(results['under_attack'])[0] == 'idle' and len(results['under_attack']) == 5
    for figures in results['under_attack'].values():
        assert figures['errors'] == 0 and figures['p99_ms'] > 0 and figures['threads_peak'] > 0
        assert figures['attack_failed'] is None
    assert 'under attack' in result.stdout
