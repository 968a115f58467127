"""The site world's callers, run from a host's namespace as the site's own programs call camvirtd:

  opsd       (TCS host) initialize() or shutdown() on every DAS host's camvirtd at once, one thread
             each, each through its own proxy with a 300 s timeout, as opsd does at dusk and dawn;
  opsd dusk  (TCS host) opsd's evening sequence: initialize() on every camvirtd (a thread each, 300 s,
             the return code ignored), then camera power on and 5 s, then cam_initialize on each camd
             (60 s), a camera that fails power-cycled and tried once more;
  opsd dawn  the morning: warm the cameras, shut the camds down, power off, then shutdown() everywhere;
  ops-shutdown  opsd's `ops` shutdown script: report_camera_status(cam).get('vm_active', False) (5 s)
             decides whether each camera is warmed, its camd shut down and its power switched off,
             then shutdown() with a 40 s timeout; COMPLETE when no exception was raised;
  camd       one camd method, called from where camds are reached (the world runs it in the DAS
             host's namespace: it routes nothing between its networks);
  dashboard  (dashboard host) report_camera_status() for every camera, every few seconds;
  ready      waits until every camvirtd answers with libvirt's view of each of its domains.

    ip netns exec <prefix>-tcs .venv/bin/python -m testworld.site.callers --site DIR/site.json opsd initialize

opsd and dashboard print one JSON object a line per call: what was called, how long it took and
the reply, or the error (Pyro's CommunicationError is what opsd treats as "camvirtd unreachable").
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import Pyro4
import Pyro4.errors

from .plan import read_site

OPSD_TIMEOUT = 300.0      # opsd's proxy timeout for initialize() and shutdown()
CAM_INITIALIZE_TIMEOUT = 60.0  # opsd's timeout for a camd's initialize()
CAMD_TIMEOUT = 5.0        # and for its other camd calls
POWER_WAIT = 5.0          # opsd waits this long after switching the cameras' power on
OPS_SHUTDOWN_TIMEOUT = 40.0  # the ops shutdown script's proxy timeout for shutdown()
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD_TIMEOUT = 5.0   # a rockit client's default proxy timeout
DASHBOARD_INTERVAL = 2.0

_print_lock = threading.Lock()


def emit(record):
    with _print_lock:
        print(json.dumps(record, sort_keys=True), flush=True)


def call(uri, timeout, method, *args):
    """(reply, None) or (None, 'ErrorType: message'), each call through a proxy of its own. Any
    exception, as the dashboard takes any for "Lost contact" (camvirtd passes on a builtin
    TimeoutError for a camd that does not answer while its VM runs)."""
    try:
        with Pyro4.Proxy(uri) as proxy:
            proxy._pyroTimeout = timeout
            return getattr(proxy, method)(*args), None
    except Exception as e:
        return None, '{}: {}'.format(type(e).__name__, e)


def opsd(site, method, timeout, hosts):
    """One thread per DAS host, all at once, as opsd does; a JSON line for each as it ends."""
    def one(das):
        started = time.monotonic()
        reply, error = call(site['camvirtd'][das]['uri'], timeout, method)
        record = {'caller': 'opsd', 'das': das, 'method': method, 'seconds': round(time.monotonic() - started, 3)}
        record.update({'error': error} if error else {'result': reply})
        emit(record)

    threads = [threading.Thread(target=one, args=(das,), name='opsd-' + das) for das in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return 0


def camd_call(site, camera, method, timeout):
    """(reply, error) of one camd method, called from the camera's DAS host namespace (a process of its
    own), as opsd reaches the camds."""
    ns = site['hosts'][site['cameras'][camera]['das']]['ns']
    command = ['ip', 'netns', 'exec', ns, sys.executable, '-m', 'testworld.site.callers', '--site',
               os.path.join(site['folder'], 'site.json'), 'camd', method, camera, '--timeout', str(timeout)]
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout + 30,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, 'TimeoutError: the camd caller did not end'
    try:
        record = json.loads(done.stdout.splitlines()[-1])
    except (IndexError, ValueError):
        return None, 'camd caller failed: ' + done.stderr.strip()[-300:]
    return record.get('result'), record.get('error')


def camd(site, method, camera, timeout):
    started = time.monotonic()
    reply, error = call(site['cameras'][camera]['camd_uri'], timeout, method)
    record = {'caller': 'camd', 'camera': camera, 'method': method, 'seconds': round(time.monotonic() - started, 3)}
    record.update({'error': error} if error else {'result': reply})
    emit(record)
    return 0


def each_camera(site, function):
    """function(camera) for every camera at once, a thread each."""
    threads = [threading.Thread(target=function, args=(cam,), name='opsd-' + cam) for cam in site['cameras']]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def opsd_step(step, **record):
    emit(dict(record, caller='opsd', step=step))


def dusk(site, power_wait):
    """opsd's evening: camvirtd first (return codes thrown away), then camera power, then cam_initialize."""
    opsd(site, 'initialize', OPSD_TIMEOUT, list(site['camvirtd']))
    opsd_step('power on')  # the world has no power switch: the cameras are "on" with their VMs
    time.sleep(power_wait)

    def initialise(camera):
        for attempt in (1, 2):
            reply, error = camd_call(site, camera, 'initialize', CAM_INITIALIZE_TIMEOUT)
            opsd_step('cam_initialize', camera=camera, attempt=attempt, result=reply, error=error)
            if error is None and reply == 0:
                return
            if attempt == 1:  # "cameras sometimes boot with a bogus device name"
                opsd_step('power cycle', camera=camera)
    each_camera(site, initialise)
    return 0


def dawn(site):
    """opsd's morning: warm the cameras, shut their camds down, power off, then camvirtd's shutdown()."""
    opsd_step('warm cameras')  # the simulated cameras warm with their shutdown
    each_camera(site, lambda camera: opsd_step('camd shutdown', camera=camera,
                                               **dict(zip(('result', 'error'),
                                                          camd_call(site, camera, 'shutdown', CAMD_TIMEOUT)))))
    opsd_step('power off')
    return opsd(site, 'shutdown', OPSD_TIMEOUT, list(site['camvirtd']))


def ops_shutdown(site):
    """opsd's `ops` shutdown script: for each camera whose VM camvirtd says is active, warm it, shut its
    camd down and power it off; then shutdown() everywhere. Any exception ends it FAILED (the script
    prints COMPLETE only when none was raised; return codes are not looked at)."""
    for das, camvirtd in site['camvirtd'].items():
        for camera in camvirtd['cameras']:
            status, error = call(camvirtd['uri'], DASHBOARD_TIMEOUT, 'report_camera_status', camera)
            active = status.get('vm_active', False) if isinstance(status, dict) else None
            emit({'caller': 'ops', 'step': 'vm_active', 'das': das, 'camera': camera, 'vm_active': active,
                  'error': error})
            if error:
                emit({'caller': 'ops', 'outcome': 'FAILED', 'step': 'warming cameras'})
                return 0
            if active:
                _reply, error = camd_call(site, camera, 'shutdown', CAMD_TIMEOUT)
                emit({'caller': 'ops', 'step': 'camd shutdown', 'camera': camera, 'error': error})
                if error:
                    emit({'caller': 'ops', 'outcome': 'FAILED', 'step': 'shutting down cameras'})
                    return 0
    for das, camvirtd in site['camvirtd'].items():
        reply, error = call(camvirtd['uri'], OPS_SHUTDOWN_TIMEOUT, 'shutdown')
        emit({'caller': 'ops', 'step': 'shutdown', 'das': das, 'result': reply, 'error': error})
        if error:
            emit({'caller': 'ops', 'outcome': 'FAILED', 'step': 'shutdown'})
            return 0
    emit({'caller': 'ops', 'outcome': 'COMPLETE'})
    return 0


def dashboard(site, rounds, interval, timeout):
    """report_camera_status for every camera, `rounds` times, `interval` s apart."""
    for round_number in range(rounds):
        started_round = time.monotonic()
        for das, camvirtd in site['camvirtd'].items():
            for camera in camvirtd['cameras']:
                started = time.monotonic()
                reply, error = call(camvirtd['uri'], timeout, 'report_camera_status', camera)
                record = {'caller': 'dashboard', 'round': round_number, 'das': das, 'camera': camera,
                          'seconds': round(time.monotonic() - started, 3)}
                if error:
                    record['error'] = error
                else:
                    record.update(state=reply.get('state'), vm_active=reply.get('vm_active'))
                emit(record)
        if round_number + 1 < rounds:
            time.sleep(max(0.0, interval - (time.monotonic() - started_round)))
    return 0


def settled(status):
    return isinstance(status, dict) and status.get('libvirt_connected') and \
        all(d['state'] not in ('unknown', 'missing') for d in status['domains'])


def ready(site, timeout):
    """0 once every camvirtd answers with every domain's state, else 1 after `timeout` s."""
    deadline = time.monotonic() + timeout
    waiting = dict((das, c['uri']) for das, c in site['camvirtd'].items())
    while waiting:
        for das, uri in list(waiting.items()):
            status, _error = call(uri, 2.0, 'report_status')
            if settled(status):
                del waiting[das]
        if not waiting:
            break
        if time.monotonic() > deadline:
            print('camvirtd on {} did not answer with its domains within {} s'.format(
                ', '.join(waiting), timeout), file=sys.stderr)
            return 1
        time.sleep(0.1)
    return 0


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='python -m testworld.site.callers')
    parser.add_argument('--site', required=True, help='the world\'s site.json')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')
    commands.required = True
    ops = commands.add_parser('opsd', help='initialize() or shutdown() on every DAS host at once, or opsd\'s '
                                           'whole dusk or dawn sequence')
    ops.add_argument('method', choices=('initialize', 'shutdown', 'dusk', 'dawn'))
    ops.add_argument('--power-wait', type=float, default=POWER_WAIT, help='dusk: seconds after power on')
    ops.add_argument('--timeout', type=float, default=OPSD_TIMEOUT, help='proxy timeout (default %(default)s)')
    ops.add_argument('--das', action='append', metavar='HOST', help='only this DAS host (repeatable)')
    dash = commands.add_parser('dashboard', help='poll report_camera_status for every camera')
    dash.add_argument('--rounds', type=int, default=1000000)
    dash.add_argument('--interval', type=float, default=DASHBOARD_INTERVAL)
    dash.add_argument('--timeout', type=float, default=DASHBOARD_TIMEOUT)
    commands.add_parser('ops-shutdown', help='opsd\'s ops shutdown script')
    one = commands.add_parser('camd', help='one camd method (initialize, shutdown, report_status)')
    one.add_argument('method', choices=('initialize', 'shutdown', 'report_status'))
    one.add_argument('camera')
    one.add_argument('--timeout', type=float, default=CAMD_TIMEOUT)
    wait = commands.add_parser('ready', help='wait until every camvirtd answers with its domains')
    wait.add_argument('--timeout', type=float, default=30.0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    Pyro4.config.SERIALIZER = 'serpent'
    try:
        site = read_site(args.site)
    except (OSError, ValueError) as e:
        print('sitecallers: cannot read {}: {}'.format(args.site, e), file=sys.stderr)
        return 1
    if args.command == 'opsd':
        unknown = [d for d in args.das or [] if d not in site['camvirtd']]
        if unknown:
            print('sitecallers: no DAS host {} (the site has {})'.format(
                ', '.join(unknown), ', '.join(site['camvirtd'])), file=sys.stderr)
            return 1
        if args.method == 'dusk':
            return dusk(site, args.power_wait)
        if args.method == 'dawn':
            return dawn(site)
        return opsd(site, args.method, args.timeout, args.das or list(site['camvirtd']))
    if args.command == 'ops-shutdown':
        return ops_shutdown(site)
    if args.command == 'camd':
        if args.camera not in site['cameras']:
            print('sitecallers: no camera {}'.format(args.camera), file=sys.stderr)
            return 1
        return camd(site, args.method, args.camera, args.timeout)
    if args.command == 'dashboard':
        try:
            return dashboard(site, args.rounds, args.interval, args.timeout)
        except KeyboardInterrupt:
            return 130
    return ready(site, args.timeout)


if __name__ == '__main__':
    sys.exit(main())
