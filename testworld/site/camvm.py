"""One simulated camera VM of the site world: a camd process, run in the VM's own network namespace
(`ip netns exec <prefix>-camN python -m testworld.site.camvm ...`) while its libvirt domain runs.

With --delay, the VM's link is slow: camd listens on the VM's loopback and a DelayingRelay at the
VM's address passes each byte on `delay` seconds late, each way. It runs until SIGTERM or SIGKILL.
"""

import argparse
import signal
import sys

import Pyro4.errors

from rockit.camvirt.daemon.service import StopRequest, configure_pyro
from rockit.camvirt.shared.registry import DaemonAddress

from ..simcamd import ABSENT, ANSWERS, BEHAVIOURS, DEFAULT_INITIALIZE_SECONDS, HUNG, start_camd
from .delayrelay import DelayingRelay

LOOPBACK = '127.0.0.1'


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='python -m testworld.site.camvm')
    parser.add_argument('--host', required=True, help='the VM\'s address')
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--object-id', required=True)
    parser.add_argument('--camera-id', required=True)
    parser.add_argument('--hangs', action='store_true', help='accept connections and never answer')
    parser.add_argument('--behaviour', choices=[b for b in BEHAVIOURS if b != ABSENT], default=ANSWERS,
                        help='how camd behaves (default %(default)s: its camera initialised)')
    parser.add_argument('--initialize-seconds', type=float, default=DEFAULT_INITIALIZE_SECONDS,
                        help='how long camd\'s initialize() holds the camera lock')
    parser.add_argument('--delay', type=float, default=0.0, metavar='SECONDS',
                        help='added latency each way between the VM\'s address and camd')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    configure_pyro()
    stop = StopRequest(signums=(signal.SIGTERM, signal.SIGINT))
    camd_host = LOOPBACK if args.delay > 0 else args.host
    address = DaemonAddress(args.object_id, args.object_id, camd_host, args.port)
    try:
        behaviour = HUNG if args.hangs else args.behaviour
        camd = start_camd(address, args.camera_id, behaviour, args.initialize_seconds)
        relay = DelayingRelay((args.host, args.port), (LOOPBACK, args.port), args.delay).start() \
            if args.delay > 0 else None
    except (OSError, Pyro4.errors.CommunicationError) as e:
        print('sitecamvm: camd {} cannot listen on {}:{}: {}'.format(args.object_id, args.host, args.port, e),
              file=sys.stderr)
        return 1
    print('camd {} of camera {} {} on {}:{}{}'.format(
        args.object_id, args.camera_id, behaviour, args.host, args.port,
        ' (+{:.0f} ms each way)'.format(args.delay * 1000) if relay else ''), flush=True)
    stop.wait()
    if relay is not None:
        relay.stop()
    camd.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
