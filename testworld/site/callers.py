"""The site world's callers, run from a host's namespace as the site's own programs call camvirtd:

  opsd       (TCS host) initialize() or shutdown() on every DAS host's camvirtd at once, one thread
             each, each through its own proxy with a 300 s timeout, as opsd does at dusk and dawn;
  dashboard  (dashboard host) report_camera_status() for every camera, every few seconds;
  ready      waits until every camvirtd answers with libvirt's view of each of its domains.

    ip netns exec <prefix>-tcs .venv/bin/python -m testworld.site.callers --site DIR/site.json opsd initialize

opsd and dashboard print one JSON object a line per call: what was called, how long it took and
the reply, or the error (Pyro's CommunicationError is what opsd treats as "camvirtd unreachable").
"""

import argparse
import json
import sys
import threading
import time

import Pyro4
import Pyro4.errors

from .plan import read_site

OPSD_TIMEOUT = 300.0      # opsd's proxy timeout for initialize() and shutdown()
DASHBOARD_TIMEOUT = 5.0   # a rockit client's default proxy timeout
DASHBOARD_INTERVAL = 2.0

_print_lock = threading.Lock()


def emit(record):
    with _print_lock:
        print(json.dumps(record, sort_keys=True), flush=True)


def call(uri, timeout, method, *args):
    """(reply, None) or (None, 'ErrorType: message'), each call through a proxy of its own."""
    try:
        with Pyro4.Proxy(uri) as proxy:
            proxy._pyroTimeout = timeout  # pylint: disable=protected-access
            return getattr(proxy, method)(*args), None
    except Pyro4.errors.PyroError as e:
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
    ops = commands.add_parser('opsd', help='initialize() or shutdown() on every DAS host at once')
    ops.add_argument('method', choices=('initialize', 'shutdown'))
    ops.add_argument('--timeout', type=float, default=OPSD_TIMEOUT, help='proxy timeout (default %(default)s)')
    ops.add_argument('--das', action='append', metavar='HOST', help='only this DAS host (repeatable)')
    dash = commands.add_parser('dashboard', help='poll report_camera_status for every camera')
    dash.add_argument('--rounds', type=int, default=1000000)
    dash.add_argument('--interval', type=float, default=DASHBOARD_INTERVAL)
    dash.add_argument('--timeout', type=float, default=DASHBOARD_TIMEOUT)
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
        return opsd(site, args.method, args.timeout, args.das or list(site['camvirtd']))
    if args.command == 'dashboard':
        try:
            return dashboard(site, args.rounds, args.interval, args.timeout)
        except KeyboardInterrupt:
            return 130
    return ready(site, args.timeout)


if __name__ == '__main__':
    sys.exit(main())
