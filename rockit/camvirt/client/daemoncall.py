"""Calls to camvirtd over Pyro4, and the message when it cannot be reached."""

import sys

import Pyro4

from rockit.camvirt.client.reach import EXIT_UNREACHABLE, unreachable_lines
from rockit.camvirt.shared.constants import CommandStatus

STATUS_TIMEOUT = 10
# initialize() and shutdown() block for up to their timeout; the proxy waits this much longer.
COMMAND_TIMEOUT_MARGIN = 15


def call_daemon(config, method, timeout, *args):
    """The result of a camvirtd method; Pyro4.errors.CommunicationError when unreachable."""
    with Pyro4.Proxy(config.daemon.uri) as proxy:
        proxy._pyroTimeout = timeout
        return getattr(proxy, method)(*args)


def exit_status(code):
    if code == CommandStatus.CommunicationError:
        return EXIT_UNREACHABLE
    return code if 0 <= code < 256 else 1


def print_unreachable(config, error, timeout, phase=None):
    """The address tried, why it failed and what to check, on stderr (exit status 101)."""
    prefix = 'camvirt: {}'.format('{}: '.format(phase) if phase else '')
    lines = unreachable_lines(config, error, timeout)
    print('\n'.join([prefix + lines[0]] + lines[1:]), file=sys.stderr)
