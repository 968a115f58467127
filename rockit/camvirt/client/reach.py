"""Why camvirtd could not be reached, in plain words, and what an operator should check next."""

import errno
import os
import socket

import Pyro4.errors

# Exit status of every camvirt command when camvirtd cannot be reached (scripts rely on it).
EXIT_UNREACHABLE = 101


class NotCamvirtd(Exception):
    """Something answered report_status() with what no camvirtd sends (a camd, say)."""


def check_status_reply(reply):
    """The reply when it has the shape of camvirtd's report_status(), else raises NotCamvirtd."""
    if not isinstance(reply, dict) or not isinstance(reply.get('domains'), list):
        raise NotCamvirtd('its report_status() reply has no list of domains')
    return reply


def unit_name(config_path):
    """The systemd unit that serves a config: camvirtd@<config file name without .json>."""
    name = os.path.basename(config_path or '')
    if name.endswith('.json'):
        name = name[:-len('.json')]
    return 'camvirtd@{}'.format(name or '<config>')


def _socket_error(error):
    """The OS-level error under a Pyro4 error, if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError):
            return error
        error = error.__cause__ or error.__context__
    return None


def classify(error, timeout):
    """(reason, kind) for an exception from calling camvirtd; kind picks the advice:
    'down' (nothing listens), 'network' (host or firewall), 'stuck' (answers late), 'other' (something
    else listens there), 'closed' (the connection was dropped)."""
    if isinstance(error, NotCamvirtd):
        return 'something answers there but it is not a camvirtd ({})'.format(error), 'other'
    cause = _socket_error(error)
    if isinstance(cause, ConnectionRefusedError):
        return 'connection refused: nothing listens on that port', 'down'
    if isinstance(cause, socket.gaierror):
        return 'cannot resolve the host name ({})'.format(cause.strerror or cause), 'network'
    if isinstance(error, Pyro4.errors.TimeoutError):  # connected, then no reply (Pyro4's own error)
        return 'camvirtd accepted the connection but did not answer within {:g} s'.format(timeout), 'stuck'
    if isinstance(cause, socket.timeout):  # the TCP connection itself was not made in time
        return 'no answer within {:g} s: the host is down or a firewall drops the port'.format(timeout), 'network'
    if isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH,
                                                       errno.EHOSTDOWN):
        return '{}'.format(os.strerror(cause.errno).lower()), 'network'
    if isinstance(error, Pyro4.errors.ConnectionClosedError) or isinstance(cause, ConnectionResetError):
        return 'camvirtd closed the connection (restarting or overloaded?)', 'closed'
    text = str(error)
    if 'rejected' in text or 'unknown object' in text:
        return 'something answers there but it is not this camvirtd ({})'.format(text), 'other'
    if isinstance(error, (Pyro4.errors.ProtocolError, Pyro4.errors.SerializeError)):
        return 'something answers there but it does not speak Pyro4 ({})'.format(text), 'other'
    if cause is not None:
        return cause.strerror.lower() if cause.strerror else str(cause), 'network'
    return text or type(error).__name__, 'other'


def next_checks(kind, address, config_path):
    """What to look at next, most likely first."""
    unit = unit_name(config_path)
    running = 'is {} running on {}? (systemctl status {}; journalctl -u {})'.format(
        unit, address.host, unit, unit)
    port = 'is port {}/tcp open on {}? (firewall-cmd --list-ports)'.format(address.port, address.host)
    if kind == 'down':
        return [running, 'does the registry give {} the right host and port? (camvirt config)'.format(unit)]
    if kind == 'network':
        return ['is {} up and reachable from here? (ping {})'.format(address.host, address.host), port, running]
    if kind == 'stuck':
        return ['is {} busy or stuck? (journalctl -u {})'.format(unit, unit), running]
    if kind == 'closed':
        return [running]
    return ['does the registry give {} the right host and port? (camvirt config)'.format(unit), running]


def unreachable_lines(config, error, timeout):
    """The message for an unreachable camvirtd: address and reason first, then what to check."""
    address = config.daemon
    reason, kind = classify(error, timeout)
    lines = ['cannot reach camvirtd at {}:{} ({}): {}'.format(address.host, address.port, address.uri, reason)]
    lines += ['  check: ' + check for check in next_checks(kind, address, config.path)]
    return lines


def short_reason(config, error, timeout):
    """One line for a table cell or a watch line: the address and the reason."""
    address = config.daemon
    return '{}:{}: {}'.format(address.host, address.port, classify(error, timeout)[0])
