"""make bench, "under attack": the latency of a control machine (127.0.0.1) and of the dashboard's
host (127.0.0.100, not a control machine) while each attack runs against ./camvirtd from 127.0.0.2-99
(none a control machine), beside idle; camvirtd's peak RSS and threads, and whether a VM or the last
command changed (loopback only; every attack bounded in count and time)."""

import json
import os
import sys
import threading
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from Pyro4 import message  # noqa: E402

from testworld import attacks  # noqa: E402

HOST = '127.0.0.1'
# Each attack from addresses of its own: camvirtd stops serving an address that floods it with
# refusals for the rest of a 10 s interval, which would spare it the next attack from that address.
LARGE_FROM, FLOOD_FROM, ONEWAY_FROM = '127.0.0.11', '127.0.0.12', '127.0.0.13'
BOMB_FROM, PLAIN_FROM, BATCH_FROM, RESET_FROM = '127.0.0.14', '127.0.0.15', ('127.0.0.16', '127.0.0.17'), '127.0.0.18'
HOLDERS = ['127.0.0.{}'.format(20 + i) for i in range(16)]  # 16 hosts x 32 connections
WORST_FROM = ['127.0.0.{}'.format(40 + i) for i in range(32)]
CONTROL, DASHBOARD = '127.0.0.1', '127.0.0.100'
# The costliest serpent to parse (about 530 bytes of memory a byte) that fits the 8 KiB limit: refused
# unparsed, as it holds more values than a real request.
COSTLY = b'[' + b'{},' * 2700 + b'{}]'
# The costliest that is parsed: 256 values (wireframes.MAX_VALUES) of the costliest kind, a dict's.
WORST_PARSED = b'{' + b','.join(b'%d:%d' % (10 ** 11 + i, 10 ** 11 + i) for i in range(256)) + b'}'
# A 3 KB zlib body that inflates to 2 MB of serpent (Pyro4 would inflate it without limit).
BOMB = zlib.compress(b'[' + b'1,' * 1000000 + b'1]', 9)
DRIP_FROM = '127.0.0.19'
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
    """initialize() from a machine that is not a control machine, 3,000 pipelined at a time."""
    _repeat(stop, attacks.call_flood, HOST, port, object_id, 'initialize', [None], 3000, source=FLOOD_FROM,
            seconds=10)


def pipelined_hung_camera(port, object_id, stop):
    """3,000 report_camera_status() of a camera whose camd hangs, pipelined on one connection."""
    attacks.call_flood(HOST, port, object_id, 'report_camera_status', ['hung'], 3000, source=ONEWAY_FROM,
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


def _send_and_close(source, data, object_id=None):
    """Sends `data` on a new connection (after a handshake with object_id) and waits for the server's
    answer or close, at most 5 s."""
    sock = attacks.handshake(HOST, _send_and_close.port, object_id, source) if object_id else \
        attacks.connect(HOST, _send_and_close.port, source)
    try:
        sock.settimeout(5)
        sock.sendall(data)
        sock.recv(65536)
    except OSError:
        pass
    finally:
        sock.close()


def compressed_bomb(port, _object_id, stop):
    """CONNECTs with FLAGS_COMPRESSED whose 3 KB body inflates to 2 MB, one after another."""
    _send_and_close.port = port
    data = message.Message(message.MSG_CONNECT, BOMB, attacks.SERPENT.serializer_id,
                           message.FLAGS_META_ON_CONNECT | message.FLAGS_COMPRESSED, 0).to_bytes()
    _repeat(stop, _send_and_close, BOMB_FROM, data)


def _costly(msg_type, body=COSTLY):
    flags = message.FLAGS_META_ON_CONNECT if msg_type == message.MSG_CONNECT else 0
    return message.Message(msg_type, body, attacks.SERPENT.serializer_id, flags, 1).to_bytes()


def large_plain_messages(port, object_id, stop):
    """24 connections from one address, each sending the costliest plain message the size limit lets
    through (8 KiB that would parse to 4 MB), in the handshake and after it, again and again."""
    _send_and_close.port = port
    kinds = [(_costly(message.MSG_CONNECT), None), (_costly(message.MSG_INVOKE), object_id)] * 12
    _run([threading.Thread(target=_repeat, args=(stop, _send_and_close, PLAIN_FROM, data, handshake))
          for data, handshake in kinds])


def batches(port, object_id, stop):
    """Two addresses, 24 connections each, each sending batches of report_status() calls."""
    _send_and_close.port = port
    calls = [('report_status', (), {})] * 300
    data = message.Message(message.MSG_INVOKE, attacks.SERPENT.serializeCall(object_id, '<batch>', calls, {})[0],
                           attacks.SERPENT.serializer_id, message.FLAGS_BATCH, 1).to_bytes()
    _run([threading.Thread(target=_repeat, args=(stop, _send_and_close, source, data, object_id))
          for source in BATCH_FROM for _ in range(24)])


def oneway_and_reset(port, object_id, stop):
    """oneway and plain shutdown(None, True) and initialize() from a machine that is not a control
    machine, each connection reset (SO_LINGER 0) at once."""
    calls = [('shutdown', [None, True], True), ('initialize', [None], True), ('shutdown', [None, True], False),
             ('initialize', [None], False)]
    while not stop.is_set():
        for method, args, oneway in calls:
            try:
                attacks.call_and_reset(HOST, port, object_id, method, args, oneway=oneway, source=RESET_FROM)
            except OSError:
                stop.wait(0.1)


def _hold_renewed(port, stop, sources, per_source, partial=b''):
    while not stop.is_set():
        held = []
        for source in sources:
            held += attacks.hold(HOST, port, per_source, partial=partial, source=source)
        stop.wait(HOLD_RENEW)
        for sock in held:
            sock.close()


def held_16x32(port, _object_id, stop):
    """16 addresses holding 32 idle connections each (512, half of what camvirtd takes from machines
    that are not control machines), renewed as they are dropped."""
    _hold_renewed(port, stop, HOLDERS, 32)


def worst_case_memory(port, object_id, stop):
    """The worst the limits allow: 32 addresses x 32 connections (every connection camvirtd takes from
    machines that are not control machines), each sending the costliest message that is parsed again
    and again (every parse slot busy, every connection holding a message)."""
    _send_and_close.port = port
    data = _costly(message.MSG_CONNECT, WORST_PARSED)
    _run([threading.Thread(target=_repeat, args=(stop, _send_and_close, source, data))
          for source in WORST_FROM for _ in range(32)])


# In this order: the pipelined calls of the hung camera keep a few workers busy long after.
# (results key, one line for docs/performance.md, attack): the key stays short, results.json is read by it.
IDLE = ('idle', 'none (idle)', None)
ATTACKS = [
    ('500 idle/slow connections', '250 idle and slow connections from 127.0.0.2 (32 kept) and 248 from 8 other '
     'addresses, renewed every 4 s', held_connections),
    ('10 MB, 40 MB, 2 GiB messages', '10 MB, 40 MB and 2 GiB-declared messages, in and after the handshake, '
     'repeated', large_messages),
    ('refusal flood', '`initialize()` floods from a machine that is not a control machine, 3,000 pipelined',
     refusal_flood),
    ('compressed bomb', 'CONNECTs whose 3 KB zlib body inflates to 2 MB', compressed_bomb),
    ('8 KiB plain, 24 connections', '8 KiB plain messages that would parse to 4 MB, 24 connections, in and after '
     'the handshake', large_plain_messages),
    ('batches from two addresses', 'batches of `report_status()`, two addresses x 24 connections', batches),
    ('oneway + reset', 'oneway and plain `shutdown`/`initialize`, each connection reset at once', oneway_and_reset),
    ('16 x 32 connections', '16 addresses x 32 idle connections, renewed', held_16x32),
    ('worst case: 1024 x costliest', 'worst case: 32 addresses x 32 connections, each sending the costliest '
     'parsed message without pause', worst_case_memory),
    ('3000 pipelined, hung camera', '3,000 pipelined `report_camera_status()` of a hung camera',
     pipelined_hung_camera),
    ('dripping camd, 9 askers', 'a camd dripping its reply (10 kB declared, a byte every 0.5 s), asked by 8 '
     'dashboards and `report_status()`', dripping_camera),
]


def _recording(attack, failures, *args):
    try:
        attack(*args)
    except Exception as e:
        failures.append('{}: {}'.format(type(e).__name__, e))


def _repeat(stop, function, *args, **kwargs):
    while not stop.is_set():
        try:
            function(*args, **kwargs)
        except (OSError, ConnectionError):
            stop.wait(0.1)  # refused at connect or in the handshake: try again


def _run(threads):
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def measure_under_attack(world, dashboard, sampler):
    """{attack: figures and its description}, with 'idle' first. dashboard(source) -> the Popen of a load
    process making dashboard calls (a proxy per call) from `source`, printing {'latencies', 'errors'};
    sampler(world) -> a context manager keeping peak rss_mb and threads."""
    results = {}
    for name, description, attack in [IDLE] + ATTACKS:
        stop = threading.Event()
        failures = []
        attacker = threading.Thread(target=_recording, args=(attack, failures, world.camvirt_port, 'bench_camvirt',
                                                             stop)) if attack else None
        before = world.vm_state()
        with sampler(world) as peak:
            if attacker:
                attacker.start()
                stop.wait(0.5)  # under way before the first dashboard call
            try:
                loads = {who: dashboard(source) for who, source in (('control', CONTROL), ('dashboard', DASHBOARD))}
                calls = {who: json.loads(process.communicate()[0]) for who, process in loads.items()}
            finally:
                stop.set()
                if attacker:
                    attacker.join(timeout=30)
        figures = {'description': description, 'rss_mb_peak': round(peak.rss_mb, 1), 'threads_peak': peak.threads,
                   'vm_changed': world.vm_state() != before,
                   'attack_failed': failures[0] if failures else None}  # figures without an attack are no figures
        for who, measured in calls.items():
            latencies = sorted(measured['latencies'])
            figures.update({who + '_p50_ms': _ms(latencies, 50), who + '_p99_ms': _ms(latencies, 99),
                            who + '_errors': measured['errors'], who + '_error_types': measured['error_types']})
        # The control machine's figures under the names of before (the table's first columns).
        figures.update({'p50_ms': figures['control_p50_ms'], 'p99_ms': figures['control_p99_ms'],
                        'errors': figures['control_errors']})
        results[name] = figures
    return results


def _ms(ordered, p):
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))] * 1000.0, 2)


def print_table(results):
    print('\nunder attack (from 127.0.0.2-99; control machine 127.0.0.1, dashboard host 127.0.0.100, a proxy '
          'per call; targets p99 <= 100 ms, RSS < 80 MB, no VM changed)')
    print('{:<32}{:>9}{:>9}{:>6}{:>11}{:>11}{:>6}{:>8}{:>8}{:>11}'.format(
        'attack', 'ctl p50', 'ctl p99', 'err', 'dash p50', 'dash p99', 'err', 'RSS MB', 'threads', 'VM changed'))
    for name, r in results.items():
        cells = [r[key] for key in ('control_p50_ms', 'control_p99_ms', 'control_errors', 'dashboard_p50_ms',
                                    'dashboard_p99_ms', 'dashboard_errors', 'rss_mb_peak', 'threads_peak')]
        # A caller whose every call failed has no latencies: a dash, as docs/performance.md shows it.
        print('{:<32}{:>9}{:>9}{:>6}{:>11}{:>11}{:>6}{:>8}{:>8}{:>11}'.format(
            name, *['-' if cell is None else cell for cell in cells], 'YES' if r['vm_changed'] else 'no'))
        if r['attack_failed']:
            print('    the attack failed: ' + r['attack_failed'])
