"""Helpers the tests, the benchmark and the sandbox share: ports, polling with a deadline, and domains
on libvirt's test driver."""

import json
import os
import random
import re
import socket
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_URI = 'test:///default'

# Ports for servers started later: below Linux's ephemeral range (32768-60999), so that no client
# connection's local port can take one between choosing it and binding it.
_PORT_RANGE = (20000, 32000)
# Every port handed out in this process: a port is free until its server binds it, so without this
# two servers of one world (or of two worlds alive at once) could be given the same one.
_handed_out = set()
_handed_out_lock = threading.Lock()


def free_port(host='127.0.0.1'):
    """A port on `host` that nothing listens on now and that no caller in this process was given
    before, picked at random so that parallel runs rarely meet."""
    while True:
        port = random.randrange(*_PORT_RANGE)
        with _handed_out_lock:
            if port in _handed_out:
                continue
            _handed_out.add(port)
        with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port


def write_one_camera_files(folder, log_daemon=None):
    """A registry and a config in `folder` for a camvirtd on loopback with one camera in the test
    driver's own 'test' domain (which runs): enough to start it as a process. log_daemon: the address
    ({'object_id', 'host', 'port'}) of an observatory log daemon, else the log goes to an address where
    nothing listens. Returns (registry path, config path, camvirtd's port)."""
    port = free_port()
    daemons = {'camvirt': {'object_id': 'camvirt_daemon', 'host': 'LocalHost', 'port': port},
               'cam': {'object_id': 'cam', 'host': 'LocalHost', 'port': free_port()},
               'log': log_daemon or {'object_id': 'log', 'host': 'LocalHost', 'port': free_port()}}
    registry, config = os.path.join(str(folder), 'registry.json'), os.path.join(str(folder), 'c.json')
    with open(registry, 'w') as f:
        json.dump({'daemons': daemons, 'machines': {'LocalHost': '127.0.0.1'}}, f)
    with open(config, 'w') as f:
        json.dump({'daemon': 'camvirt', 'log_name': 'camvirtd@test', 'control_machines': ['LocalHost'],
                   'initialize_timeout': 1, 'shutdown_timeout': 1, 'libvirt_uri': TEST_URI, 'log_daemon': 'log',
                   'domains': {'test': {'cam1': 'cam'}}}, f)
    return registry, config, port


def deadline(seconds):
    return time.monotonic() + seconds


def wait_until(predicate, seconds=5, interval=0.01):
    """Polls predicate until it returns something true or `seconds` pass; returns its last value."""
    end = deadline(seconds)
    while True:
        value = predicate()
        if value or time.monotonic() > end:
            return value
        time.sleep(interval)


def renamed_domain_xml(template_xml, name):
    """A domain XML copied from `template_xml` under a new name, without its UUID (libvirt makes one)."""
    xml = re.sub(r'<uuid>[^<]*</uuid>', '', template_xml)
    return re.sub(r'<name>[^<]*</name>', '<name>{}</name>'.format(name), xml, count=1)


def define_test_domain(conn, name):
    """A new domain on the test driver, copied from its built-in 'test' domain."""
    return conn.defineXML(renamed_domain_xml(conn.lookupByName('test').XMLDesc(), name))


def remove_domain(conn, name):
    """Destroys and undefines the domain, if there is one of that name."""
    import libvirt
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    if dom.isActive():
        dom.destroy()
    dom.undefine()


class ListLog:
    """An ObservatoryLog stand-in for tests that keeps every line (it is our own class, not libvirt
    or Pyro4, so a recording double is fair)."""

    def __init__(self):
        self.lines = []
        self._lock = threading.Lock()

    def _add(self, level, message):
        with self._lock:
            self.lines.append((level, message))

    def info(self, message):
        self._add('info', message)

    def warning(self, message):
        self._add('warning', message)

    def error(self, message):
        self._add('error', message)

    def text(self):
        with self._lock:
            return '\n'.join('{}: {}'.format(level, message) for level, message in self.lines)
