"""The under-attack table prints whatever the attacks did: a caller whose every call failed (the
dashboard's host under the CPU-flood worst case, on a slow machine) has no latencies, shown as a dash."""


def figures(**changed):
    row = {'description': 'an attack', 'control_p50_ms': 1.5, 'control_p99_ms': 9.0, 'control_errors': 0,
           'dashboard_p50_ms': 2.0, 'dashboard_p99_ms': 12.0, 'dashboard_errors': 0, 'rss_mb_peak': 50.1,
           'threads_peak': 40, 'vm_changed': False, 'attack_failed': None}
    row.update(changed)
    return row


def test_a_caller_without_latencies_is_a_dash(attack, capsys):
    attack.print_table({'idle': figures(),
                        'worst case': figures(dashboard_p50_ms=None, dashboard_p99_ms=None, dashboard_errors=10)})
    lines = capsys.readouterr().out.splitlines()
    worst = next(line for line in lines if line.startswith('worst case'))
    assert worst.split()[2:9] == ['1.5', '9.0', '0', '-', '-', '10', '50.1']


def test_a_failed_attack_is_said_under_its_row(attack, capsys):
    attack.print_table({'refusal flood': figures(attack_failed='OSError: no route')})
    assert '    the attack failed: OSError: no route' in capsys.readouterr().out
