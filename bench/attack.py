"""make bench, "under attack": the dashboard's latency while each attack runs against
./camvirtd from 127.0.0.2-13 (none a control machine), beside idle, and camvirtd's peak RSS and
threads (loopback only; every attack bounded in count and time)."""

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from testworld import attacks  # noqa: E402

HOST = '127.0.0.1'
# Each attack from addresses of its own: camvirtd stops serving an address that floods it with
# refusals for the rest of a 10 s interval, which would spare it the next attack from that address.
LARGE_FROM, FLOOD_FROM, ONEWAY_FROM = '127.0.0.11', '127.0.0.12', '127.0.0.13'
DRIP_FROM = '127.0.0.14'
# Dashboards asking camvirtd about the camera whose camd drips, each a query at a time.
DRIP_CLIENTS = 8
# Held connections are renewed this often (camvirtd drops them after its 10 s idle limit).
HOLD_RENEW = 4.0


def large_messages(port, object_id, stop):
    """10 MB and 40 MB messages and a 2 GiB declared size, again and again, in the handshake and after."""
    kinds = [dict(size=10 * 2 ** 20), dict(size=40 * 2 ** 20), dict(size=8 * 2 ** 20, declared=0x7fffffff),
             dict(size=10 * 2 ** 20, object_id=object_id)]
    workers = [threading.Thread(target=_repeat, args=(stop, attacks.send_large, HOST, port),
                                kwargs=dict(kw, seconds=5, source=LARGE_FROM)) for kw in kinds]
    _run(workers)


def held_connections(port, _object_id, stop):
    """250 connections from 127.0.0.2 (100 idle, 100 with 10 bytes of a header, 50 with 20: camvirtd
    keeps 32 of them) and 248 more from 127.0.0.3-10, which it keeps."""
    while not stop.is_set():
        held = attacks.hold(HOST, port, 100) + attacks.hold(HOST, port, 100, partial=b'PYRO\x00\x30\x00\x01\x00\x00')
        held += attacks.hold(HOST, port, 50, partial=attacks.header(1, 100)[:20])
        for i in range(8):
            held += attacks.hold(HOST, port, 31, source='127.0.0.{}'.format(i + 3))
        stop.wait(HOLD_RENEW)
        for sock in held:
            sock.close()


def refusal_flood(port, object_id, stop):
    """oneway initialize() from a machine that is not a control machine, 3,000 at a time."""
    _repeat(stop, attacks.oneway_flood, HOST, port, object_id, 'initialize', [None], 3000, source=FLOOD_FROM,
            seconds=10)


def oneway_hung_camera(port, object_id, stop):
    """3,000 oneway report_camera_status() of a camera whose camd hangs, on one connection."""
    attacks.oneway_flood(HOST, port, object_id, 'report_camera_status', ['hung'], 3000, source=ONEWAY_FROM,
                         seconds=10)
    stop.wait()


def dripping_camera(port, object_id, stop):
    """8 dashboards asking, a query at a time, about the camera whose camd answers the handshake one byte
    every half second (and report_status(), which asks every camd)."""
    def ask(method, args):
        while not stop.is_set():
            try:
                sock = attacks.handshake(HOST, port, object_id, source=DRIP_FROM)
            except OSError:
                stop.wait(0.1)
                continue
            with sock:
                sock.settimeout(10)
                try:
                    sock.sendall(attacks.invoke_message(object_id, method, args))
                    attacks.receive_message(sock)
                except OSError:
                    stop.wait(0.1)
    askers = [threading.Thread(target=ask, args=('report_camera_status', ['drip'])) for _ in range(DRIP_CLIENTS)]
    _run(askers + [threading.Thread(target=ask, args=('report_status', []))])


# In this order: the oneway calls of the hung camera keep a few workers busy long after.
ATTACKS = [
    ('500 idle/slow connections', held_connections),
    ('10 MB, 40 MB, 2 GiB messages', large_messages),
    ('refusal flood (oneway)', refusal_flood),
    ('3000 oneway, hung camera', oneway_hung_camera),
    ('dripping camd, 9 askers', dripping_camera),
]


def _recording(attack, failures, *args):
    try:
        attack(*args)
    except Exception as e:  # pylint: disable=broad-except
        failures.append('{}: {}'.format(type(e).__name__, e))


def _repeat(stop, function, *args, **kwargs):
    while not stop.is_set():
        try:
            function(*args, **kwargs)
        except OSError:
            stop.wait(0.1)  # refused at connect: try again


def _run(threads):
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def measure_under_attack(world, dashboard, sampler):
    """{attack: figures}, with 'idle' first. dashboard() -> {'latencies', 'errors'} of dashboard calls
    (a proxy per call); sampler(world) -> a context manager keeping peak rss_mb and threads."""
    results = {}
    for name, attack in [('idle', None)] + ATTACKS:
        stop = threading.Event()
        failures = []
        attacker = threading.Thread(target=_recording, args=(attack, failures, world.camvirt_port, 'bench_camvirt',
                                                             stop)) if attack else None
        with sampler(world) as peak:
            if attacker:
                attacker.start()
                stop.wait(0.5)  # under way before the first dashboard call
            try:
                calls = dashboard()
            finally:
                stop.set()
                if attacker:
                    attacker.join(timeout=30)
        latencies = sorted(calls['latencies'])
        results[name] = {
            'p50_ms': _ms(latencies, 50), 'p99_ms': _ms(latencies, 99), 'errors': calls['errors'],
            'rss_mb_peak': round(peak.rss_mb, 1), 'threads_peak': peak.threads,
            'attack_failed': failures[0] if failures else None,  # figures without an attack are no figures
        }
    return results


def _ms(ordered, p):
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))] * 1000.0, 2)


def print_table(results):
    print('\nunder attack (from 127.0.0.2-13; dashboard from 127.0.0.1, a proxy per call)')
    print('{:<32}{:>10}{:>10}{:>8}{:>10}{:>9}'.format('attack', 'p50 ms', 'p99 ms', 'errors', 'RSS MB', 'threads'))
    for name, r in results.items():
        print('{:<32}{:>10}{:>10}{:>8}{:>10}{:>9}'.format(name, r['p50_ms'], r['p99_ms'], r['errors'],
                                                          r['rss_mb_peak'], r['threads_peak']))
        if r['attack_failed']:
            print('    the attack failed: ' + r['attack_failed'])
