"""The wire fuzzer against the real ./camvirtd (testworld/wirefuzz.py makes the cases): random Pyro4
messages from loopback addresses that are not control machines, and after each batch camvirtd's
invariants: it is alive, a control machine's report_status() answers within 1 s, its RSS is bounded,
no VM changed and no command ran. FUZZ_SECONDS bounds the run (`make fuzz FUZZ_SECONDS=3600` for an
hour); it prints the cases tried and the invariants broken. Cases it found are ordinary tests in
test_e2e_hostile.py and tests/test_wire.py."""

import os
import time

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from testworld import attacks, wirefuzz

from .e2e_world import process_alive

FUZZ_SECONDS = float(os.environ.get('FUZZ_SECONDS', '60'))
BATCHES_PER_ROUND = 20  # a round is one hypothesis run (a fresh random seed); rounds go on until time is up
ANSWER_BOUND = 1.0
RSS_BOUND_KIB = 120 * 1024


class Invariants:
    def __init__(self, world):
        self.world = world
        self.pid = world.camvirtd.pid
        self.before = world.report_status()
        self.states = {name: world.domstate(name) for name in world.domains}

    def check(self):
        assert process_alive(self.pid), 'camvirtd died: ' + self.world.camvirtd.describe()
        start = time.monotonic()
        status = self.world.report_status()
        seconds = time.monotonic() - start
        assert status is not None, 'the control machine got no answer'
        assert seconds < ANSWER_BOUND, 'the control machine waited {:.3f} s'.format(seconds)
        assert status['last_command'] == self.before['last_command'], status['last_command']
        assert attacks.rss_kib(self.pid) < RSS_BOUND_KIB, '{} KiB'.format(attacks.rss_kib(self.pid))
        states = {name: self.world.domstate(name) for name in self.world.domains}
        assert states == self.states, states


def fuzz(world, seconds):
    """Runs rounds of batches until `seconds` pass; (cases tried, [broken invariants])."""
    entry = world.daemons['e2e_camvirt']
    host, port, object_id = entry['host'], entry['port'], entry['object_id']
    invariants = Invariants(world)
    tried = [0]
    broken = []

    @settings(max_examples=BATCHES_PER_ROUND, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink],
              report_multiple_bugs=False)
    @given(st.lists(wirefuzz.cases(object_id), min_size=1, max_size=5))
    def batch(cases):
        for case in cases:
            wirefuzz.run_case(host, port, object_id, case)
            tried[0] += 1
        invariants.check()

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process_alive(invariants.pid):
        try:
            batch()
        except Exception as e:  # hypothesis has shrunk it and printed the case
            broken.append('{}: {}'.format(type(e).__name__, str(e).splitlines()[0] if str(e) else ''))
            print('fuzz: invariant broken: {}'.format(broken[-1]))
    return tried[0], broken


def test_random_messages_from_other_hosts_change_nothing_and_stall_nothing(make_process_world):
    world = make_process_world().start()
    with world.proxy(timeout=30) as proxy:
        assert proxy.initialize(['cam1']) == 0  # cam1 running, cam2 off: any command would change one
    started = time.monotonic()
    tried, broken = fuzz(world, FUZZ_SECONDS)
    print('fuzz: {} cases tried in {:.0f} s, {} invariants broken; camvirtd peak RSS {} KiB'.format(
        tried, time.monotonic() - started, len(broken), attacks.peak_rss_kib(world.camvirtd.pid)))
    assert not broken, broken
    assert tried > 0
