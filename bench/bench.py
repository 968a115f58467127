"""camvirtd's benchmark: how late it notices ready and stopped VMs, what it costs the dashboard, and
what it costs the host. Prints a table and writes bench/results.json, with when and on what it was
measured; bench/report.py makes docs/performance.md's figures of it.

    .venv/bin/python bench/bench.py [--once] [--output PATH]

Readiness and shutdown lag run camvirtd in this process on libvirt's test driver, called through a
real Pyro proxy; camds are SimulatedCamd servers the bench starts itself. Passthrough, hung camera and
resources run ./camvirtd, the camds and the load clients as separate processes on loopback.
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import libvirt  # noqa: E402
import Pyro4  # noqa: E402

from rockit.camvirt.daemon.compose import Camvirtd  # noqa: E402
from rockit.camvirt.daemon.obslog import ObservatoryLog  # noqa: E402
from rockit.camvirt.daemon.service import configure_pyro  # noqa: E402
from rockit.camvirt.shared.config import MAX_DOMAINS, parse_config  # noqa: E402
from rockit.camvirt.shared.registry import Registry  # noqa: E402
from rockit.camvirt.virt.eventloop import start_event_loop  # noqa: E402
from testworld import support  # noqa: E402
from testworld.simcamd import SimulatedCamd  # noqa: E402
from testworld.support import define_test_domain, free_port  # noqa: E402

import attack  # noqa: E402  (bench/attack.py, the "under attack" section)

TEST_URI = 'test:///default'
PYTHON = sys.executable


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))]


def ms(seconds):
    return round(seconds * 1000.0, 2)


def parallel(function, items):
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        return list(pool.map(function, items))


def wait_until(predicate, seconds=10):
    """Polls until predicate() holds; the benchmark cannot go on without it, so a timeout raises."""
    if not support.wait_until(predicate, seconds, interval=0.002):
        raise RuntimeError('timed out waiting')


class QuietLog(ObservatoryLog):
    """An observatory log without a log daemon that keeps the table of figures readable."""

    def __init__(self):
        super().__init__('bench', None, stream=open(os.devnull, 'w'))


class InProcessWorld:
    """N domains (one camera each) on the test driver and a camvirtd serving them on loopback."""

    def __init__(self, conn, n):
        self.conn = conn
        tag = uuid.uuid4().hex[:6]
        self.names = ['bench-{}-{}'.format(tag, i) for i in range(n)]
        registry = Registry(machines={'LocalHost': '127.0.0.1'})
        registry.merge({'camvirt': ('camvirt_' + tag, '127.0.0.1', free_port())}, {})
        domains = {}
        for i, name in enumerate(self.names):
            registry.merge({'camd{}'.format(i): ('camd_{}_{}'.format(tag, i), '127.0.0.1', free_port())}, {})
            domains[name] = {'cam{}'.format(i): 'camd{}'.format(i)}
            define_test_domain(conn, name)
        data = {'daemon': 'camvirt', 'log_name': 'bench', 'control_machines': ['LocalHost'],
                'initialize_timeout': 30, 'shutdown_timeout': 30, 'libvirt_uri': TEST_URI, 'domains': domains}
        self.config = parse_config(data, '<bench>', registry)
        self.camds = [SimulatedCamd(self.config.cameras['cam{}'.format(i)].address, 'cam{}'.format(i), initialized=True)
                      for i in range(n)]
        # camvirtd as the service composes it, served by the same hardened server.
        self.camvirtd = Camvirtd(self.config, QuietLog()).start()
        self.hypervisor = self.camvirtd.hypervisor
        self.uri = self.camvirtd.uri
        wait_until(lambda: self.hypervisor.connected)
        self.stopped_at = {}
        self._callback = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._event, None)

    def _event(self, _conn, dom, event, _detail, _opaque):
        if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
            self.stopped_at[dom.name()] = time.perf_counter()

    def proxy(self):
        proxy = Pyro4.Proxy(self.uri)
        proxy._pyroTimeout = 60
        return proxy

    def domains(self):
        return [self.conn.lookupByName(name) for name in self.names]

    def reset(self):
        """Every domain off and every camd stopped."""
        for dom in self.domains():
            if dom.isActive():
                dom.destroy()
        parallel(lambda camd: camd.stop(), self.camds)

    def all_active(self):
        return all(dom.isActive() for dom in self.domains())

    def readiness_lag(self, proxy):
        """initialize() return time minus the moment the last camd started listening."""
        self.reset()
        result = {}

        def call():
            result['code'] = proxy.initialize()
            result['at'] = time.perf_counter()

        caller = threading.Thread(target=call)
        caller.start()
        wait_until(self.all_active)
        parallel(lambda camd: camd.start(), self.camds[:-1])
        time.sleep(random.uniform(0.02, 0.08))  # the last camd comes up a little later, at a random phase
        self.camds[-1].start()
        last = time.perf_counter()
        caller.join()
        if result['code'] != 0:
            raise RuntimeError('initialize returned {}'.format(result['code']))
        return result['at'] - last

    def shutdown_lag(self, proxy):
        """shutdown() return time minus the last domain's STOPPED event as this process saw it."""
        if not self.all_active():
            parallel(lambda camd: camd.start() if not camd.running else None, self.camds)
            proxy.initialize()
        self.stopped_at.clear()
        code = proxy.shutdown()
        returned = time.perf_counter()
        wait_until(lambda: len(self.stopped_at) == len(self.names))
        if code != 0:
            raise RuntimeError('shutdown returned {}'.format(code))
        return returned - max(self.stopped_at.values())

    def close(self):
        self.reset()
        self.conn.domainEventDeregisterAny(self._callback)
        self.camvirtd.stop()
        for dom in self.domains():
            dom.undefine()


def baseline_probe(address):
    """The old daemon's probe: a fresh proxy with a 1 s timeout."""
    try:
        with Pyro4.Proxy(address.uri) as proxy:
            proxy._pyroTimeout = 1
            proxy.report_status()
        return True
    except Exception:
        return False


def baseline_readiness_lag(world):
    """A loop that checks every second, serially, that every VM runs and every camd answers."""
    world.reset()
    for dom in world.domains():
        dom.create()
    addresses = [camd.address for camd in world.camds]
    done = {}

    def poll():
        while True:
            if world.all_active() and all(baseline_probe(a) for a in addresses):
                done['at'] = time.perf_counter()
                return
            time.sleep(1)

    poller = threading.Thread(target=poll)
    poller.start()
    parallel(lambda camd: camd.start(), world.camds[:-1])
    time.sleep(random.uniform(0, 1))
    world.camds[-1].start()
    last = time.perf_counter()
    poller.join()
    return done['at'] - last


def baseline_shutdown_lag(world):
    """The same loop, already running at its own 1 s rhythm, waiting for every VM to be off after the
    bench asks each to shut down."""
    if not world.all_active():
        for dom in world.domains():
            if not dom.isActive():
                dom.create()
    world.stopped_at.clear()
    done = {}

    def poll():
        while not all(not dom.isActive() for dom in world.domains()):
            time.sleep(1)
        done['at'] = time.perf_counter()

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(random.uniform(0, 1))  # the requests reach the loop at a random phase
    for dom in world.domains():
        dom.shutdown()
    poller.join()
    wait_until(lambda: len(world.stopped_at) == len(world.names))
    return done['at'] - max(world.stopped_at.values())


def measure_lags(conn, sizes, runs, baseline_size, baseline_runs):
    readiness, shutdown, baseline = {}, {}, {}
    for n in sizes:
        world = InProcessWorld(conn, n)
        try:
            with world.proxy() as proxy:
                ready = [world.readiness_lag(proxy) for _ in range(runs)]
                stop = [world.shutdown_lag(proxy) for _ in range(runs)]
            readiness[str(n)] = {'p50': ms(percentile(ready, 50)), 'p99': ms(percentile(ready, 99))}
            shutdown[str(n)] = {'p50': ms(percentile(stop, 50)), 'p99': ms(percentile(stop, 99))}
            if n == baseline_size:
                old_ready = [baseline_readiness_lag(world) for _ in range(baseline_runs)]
                old_stop = [baseline_shutdown_lag(world) for _ in range(baseline_runs)]
                baseline = {
                    'domains': n,
                    'readiness_lag_ms': {'p50': ms(percentile(old_ready, 50)), 'p99': ms(percentile(old_ready, 99))},
                    'shutdown_lag_ms': {'p50': ms(percentile(old_stop, 50)), 'p99': ms(percentile(old_stop, 99))},
                }
                baseline['ratio'] = {
                    'readiness_p50': round(percentile(old_ready, 50) / max(percentile(ready, 50), 1e-6), 1),
                    'shutdown_p50': round(percentile(old_stop, 50) / max(percentile(stop, 50), 1e-6), 1),
                }
        finally:
            world.close()
    return readiness, shutdown, baseline


class ProcessWorld:
    """./camvirtd in its own process (its own test:///default, whose `test` domain runs), serving
    camera `cam1` (answers) and `hung` (accepts, never answers) from a camd process."""

    def __init__(self, folder):
        self.camvirt_port, self.cam_port, self.hung_port = free_port(), free_port(), free_port()
        self.drip_port = free_port()
        registry = {'daemons': {
            'bench_camvirt': {'object_id': 'bench_camvirt', 'host': 'LocalHost', 'port': self.camvirt_port},
            'bench_cam': {'object_id': 'bench_cam', 'host': 'LocalHost', 'port': self.cam_port},
            'bench_hung': {'object_id': 'bench_hung', 'host': 'LocalHost', 'port': self.hung_port},
            'bench_drip': {'object_id': 'bench_drip', 'host': 'LocalHost', 'port': self.drip_port}}}
        config = {'daemon': 'bench_camvirt', 'log_name': 'bench', 'control_machines': ['LocalHost'],
                  'initialize_timeout': 5, 'shutdown_timeout': 5, 'libvirt_uri': TEST_URI,
                  'log_daemon': 'bench_hung', 'camera_timeout': 1.0,
                  'domains': {'test': {'cam1': 'bench_cam', 'hung': 'bench_hung', 'drip': 'bench_drip'}}}
        registry_path, config_path = os.path.join(folder, 'registry.json'), os.path.join(folder, 'c.json')
        with open(registry_path, 'w') as f:
            json.dump(registry, f)
        with open(config_path, 'w') as f:
            json.dump(config, f)
        self.camds = subprocess.Popen(
            [PYTHON, os.path.join(REPO, 'bench', 'camds.py'), 'answers:bench_cam:{}'.format(self.cam_port),
             'hung:bench_hung:{}'.format(self.hung_port), 'dripping:bench_drip:{}'.format(self.drip_port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.camds.stdout.readline().strip() != 'ready':
            raise RuntimeError('camds did not start')
        notify_path = os.path.join(folder, 'notify')
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(30)
        env = dict(os.environ, CAMVIRTD_REGISTRY=registry_path, NOTIFY_SOCKET=notify_path)
        self.daemon = subprocess.Popen([PYTHON, os.path.join(REPO, 'camvirtd'), config_path,
                                        '--state-dir', os.path.join(folder, 'state')], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if notify.recv(100) != b'READY=1':
            raise RuntimeError('camvirtd did not become ready')
        notify.close()
        self.camvirt_uri = 'PYRO:bench_camvirt@127.0.0.1:{}'.format(self.camvirt_port)
        self.cam_uri = 'PYRO:bench_cam@127.0.0.1:{}'.format(self.cam_port)
        with Pyro4.Proxy(self.camvirt_uri) as proxy:  # wait until libvirt's state is read
            wait_until(lambda: proxy.report_status()['domains'][0]['state'] == 'running')

    def camd_calls(self):
        """report_status() calls the answering camd has served so far."""
        self.camds.stdin.write('calls\n')
        self.camds.stdin.flush()
        return json.loads(self.camds.stdout.readline())['bench_cam']

    def proc_status(self):
        with open('/proc/{}/status'.format(self.daemon.pid)) as f:
            fields = dict(line.split(':', 1) for line in f)
        return int(fields['VmRSS'].split()[0]) / 1024.0, int(fields['Threads'])

    def vm_state(self):
        """What no attack may change: the domain's state and the last command."""
        with Pyro4.Proxy(self.camvirt_uri) as proxy:
            proxy._pyroTimeout = 10
            status = proxy.report_status()
        return [d['state'] for d in status['domains']], status['last_command']

    def open_fds(self):
        return len(os.listdir('/proc/{}/fd'.format(self.daemon.pid)))

    def close(self):
        self.daemon.terminate()
        self.daemon.wait(10)
        self.camds.stdin.close()
        self.camds.wait(10)


def load(uri, method, arg, clients, requests, fresh=False, background=False, source=None):
    args = [PYTHON, os.path.join(REPO, 'bench', 'load.py'), uri, method, arg, str(clients), str(requests)]
    if fresh:
        args.append('--new-proxy-per-call')
    if source:
        args += ['--source', source]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    if background:
        return process
    return json.loads(process.communicate()[0])


class PeakSampler:
    """Samples camvirtd's RSS and thread count every 50 ms while a load runs; keeps the peaks."""

    def __init__(self, world):
        self._world = world
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)
        self.rss_mb, self.threads = world.proc_status()

    def _sample(self):
        while not self._stop.wait(0.05):
            rss, threads = self._world.proc_status()
            self.rss_mb, self.threads = max(self.rss_mb, rss), max(self.threads, threads)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()


def measure_passthrough(world, clients, requests):
    """report_camera_status through camvirtd against report_status straight to the camd."""
    direct = load(world.cam_uri, 'report_status', '-', clients, requests)
    with PeakSampler(world) as peak:
        through = load(world.camvirt_uri, 'report_camera_status', 'cam1', clients, requests)
    figures = {
        'p50_ratio': round(percentile(through['latencies'], 50) / percentile(direct['latencies'], 50), 2),
        'p50_ms': ms(percentile(through['latencies'], 50)),
        'direct_p50_ms': ms(percentile(direct['latencies'], 50)),
        'rps': round(len(through['latencies']) / through['elapsed'], 1),
        'direct_rps': round(len(direct['latencies']) / direct['elapsed'], 1),
        'errors': through['errors'] + direct['errors'],
    }
    return figures, peak


def measure_one_camera(world, clients, requests):
    """`clients` dashboards at once, all on one camera: camd calls made per query (single flight:
    concurrent queries share one camd call). Each keeps its proxy: from one address, 32 clients each
    making a connection per query go past the wire's per-source connection limit."""
    before = world.camd_calls()
    through = load(world.camvirt_uri, 'report_camera_status', 'cam1', clients, requests)
    calls = world.camd_calls() - before
    queries = len(through['latencies'])
    return {
        'clients': clients,
        'p50_ms': ms(percentile(through['latencies'], 50)), 'p99_ms': ms(percentile(through['latencies'], 99)),
        'rps': round(queries / through['elapsed'], 1), 'errors': through['errors'],
        'error_types': through['error_types'],
        'camd_calls_per_query': round(calls / queries, 3) if queries else None,
    }


def measure_hung_camera(world, clients, requests):
    """A camd that never answers while its VM runs: each query for it is an error (TimeoutError, as the
    dashboard's Lost contact) within camera_timeout and a margin; the other camera's p99 meanwhile."""
    quiet = load(world.camvirt_uri, 'report_camera_status', 'cam1', clients, requests)
    hung = load(world.camvirt_uri, 'report_camera_status', 'hung', clients, max(2, requests // 50), background=True)
    busy = load(world.camvirt_uri, 'report_camera_status', 'cam1', clients, requests)
    hung_result = json.loads(hung.communicate()[0])
    bound = 1.0 + 0.5
    waits = hung_result['error_latencies']
    return {
        'bound_ok': bool(waits) and max(waits) <= bound and not hung_result['latencies']
        and hung_result['error_types'] == ['TimeoutError'],
        'hung_max_ms': ms(max(waits)) if waits else None,
        'p99_ratio': round(percentile(busy['latencies'], 99) / percentile(quiet['latencies'], 99), 2),
        'p99_ms_without': ms(percentile(quiet['latencies'], 99)),
        'p99_ms_with': ms(percentile(busy['latencies'], 99)),
    }


def measure_fd_growth(world, queries):
    before = world.open_fds()
    result = load(world.camvirt_uri, 'report_camera_status', 'cam1', 4, queries // 4, fresh=True)
    # The server closes each connection when it notices the client went: give it a moment.
    end = time.monotonic() + 5
    after = world.open_fds()
    while after > before and time.monotonic() < end:
        time.sleep(0.05)
        after = world.open_fds()
    return after - before, result['errors']


def print_table(results):
    print('\ncamvirtd benchmark')
    print('{:<34}{:>12}{:>12}'.format('lag after the last event (ms)', 'p50', 'p99'))
    for kind in ('readiness_lag_ms', 'shutdown_lag_ms'):
        for n, figures in results[kind].items():
            print('{:<34}{:>12}{:>12}'.format('{} N={}'.format(kind[:-7], n), figures['p50'], figures['p99']))
    base = results['baseline']
    for kind in ('readiness_lag_ms', 'shutdown_lag_ms'):
        print('{:<34}{:>12}{:>12}'.format('1 s polling {} N={}'.format(kind[:-7], base['domains']),
                                           base[kind]['p50'], base[kind]['p99']))
    print('baseline / camvirtd (p50): readiness {readiness_p50}x, shutdown {shutdown_p50}x'.format(**base['ratio']))
    print('\n{:<12}{:>12}{:>12}{:>14}{:>10}{:>12}'.format('clients', 'p50 ratio', 'p50 ms', 'direct ms', 'rps',
                                                           'errors'))
    for clients, p in results['passthrough'].items():
        print('{:<12}{:>12}{:>12}{:>14}{:>10}{:>12}'.format(clients, p['p50_ratio'], p['p50_ms'],
                                                             p['direct_p50_ms'], p['rps'], p['errors']))
    o = results['one_camera']
    print('\n{} dashboard clients on one camera: p50 {} ms, p99 {} ms, {} queries/s, '
          '{} errors, camd calls per query {}'.format(o['clients'], o['p50_ms'], o['p99_ms'], o['rps'], o['errors'],
                                                      o['camd_calls_per_query']))
    h = results['hung_camera']
    print('\nhung camera: bound_ok {} (slowest TimeoutError {} ms), other cameras p99 ratio {} ({} -> {} ms)'.format(
        h['bound_ok'], h['hung_max_ms'], h['p99_ratio'], h['p99_ms_without'], h['p99_ms_with']))
    r = results['resources']
    print('resources: RSS {} MB idle, {} MB under load; threads {} idle, {} under load; fd growth {} after {} '
          'queries'.format(r['rss_mb_idle'], r['rss_mb'], r['threads_idle'], r['threads'], r['fd_growth'],
                           r['fd_queries']))


# passthrough: {clients: requests per client}; hung: (clients, requests per client)
# The largest size is the config's domain cap: a plan beyond it fails at its first config.
FULL = {'sizes': [1, 8, MAX_DOMAINS], 'runs': 25, 'baseline_size': 8, 'baseline_runs': 20,
        'passthrough': {1: 2000, 32: 150}, 'hung': (8, 200), 'fd_queries': 10000, 'attack': 300,
        'one_camera': (32, 150)}
# make test: the full plan at its real sizes and client counts, each measured once, to prove it runs.
ONCE = dict(FULL, runs=1, baseline_runs=1, passthrough={1: 30, 32: 5}, hung=(8, 10), fd_queries=200, attack=10,
            one_camera=(32, 5))


def git_commit():
    """HEAD's short hash, with "+dirty" when tracked files differ from it; "unknown" without git."""
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, capture_output=True, text=True,
                              timeout=30)
        changes = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=REPO,
                                 capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    if head.returncode != 0 or changes.returncode != 0 or not head.stdout.strip():
        return 'unknown'
    return head.stdout.strip() + ('+dirty' if changes.stdout.strip() else '')


def measurement(plan_name, plan, commit):
    """When (the figures' writing, UTC) and on what they were measured: docs/performance.md says it."""
    return {'at': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'), 'commit': commit,
            'python': platform.python_version(), 'cpus': os.cpu_count(), 'plan': dict(name=plan_name, **plan)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--once', action='store_true',
                        help="the full plan's sizes, each measured once (make test: proves it runs, not figures)")
    parser.add_argument('--output', default=os.path.join(REPO, 'bench', 'results.json'))
    args = parser.parse_args()
    plan_name, plan = ('once', ONCE) if args.once else ('full', FULL)
    commit = git_commit()  # before the run: the code measured, not the results.json it writes
    configure_pyro()
    start_event_loop()
    conn = libvirt.open(TEST_URI)
    readiness, shutdown, baseline = measure_lags(conn, plan['sizes'], plan['runs'], plan['baseline_size'],
                                                 plan['baseline_runs'])
    with tempfile.TemporaryDirectory() as folder:
        world = ProcessWorld(folder)
        try:
            rss_idle, threads_idle = world.proc_status()
            passthrough, rss_peak, threads_peak = {}, rss_idle, threads_idle
            for clients, requests in plan['passthrough'].items():
                passthrough[str(clients)], peak = measure_passthrough(world, clients, requests)
                rss_peak, threads_peak = max(rss_peak, peak.rss_mb), max(threads_peak, peak.threads)
            one_camera = measure_one_camera(world, *plan['one_camera'])
            hung = measure_hung_camera(world, *plan['hung'])
            fd_growth, fd_errors = measure_fd_growth(world, plan['fd_queries'])
            # Last, as its oneway calls of the hung camera keep camvirtd busy after it.
            under_attack = attack.measure_under_attack(world, lambda source: load(
                world.camvirt_uri, 'report_camera_status', 'cam1', 1, plan['attack'], fresh=True, background=True,
                source=source), PeakSampler)
        finally:
            world.close()
    results = {
        'measured': measurement(plan_name, plan, commit),
        'readiness_lag_ms': readiness,
        'shutdown_lag_ms': shutdown,
        'passthrough': passthrough,
        'one_camera': one_camera,
        'hung_camera': hung,
        'resources': {'rss_mb': round(rss_peak, 1), 'threads': threads_peak,
                      'rss_mb_idle': round(rss_idle, 1), 'threads_idle': threads_idle,
                      'fd_growth': fd_growth, 'fd_queries': plan['fd_queries'], 'fd_query_errors': fd_errors},
        'baseline': baseline,
        'under_attack': under_attack,
    }
    with open(args.output, 'w') as f:
        json.dump(results, f, indent=2)
    print_table(results)
    attack.print_table(under_attack)


if __name__ == '__main__':
    main()
