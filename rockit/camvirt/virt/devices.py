"""Which camera passthrough devices are on the host now, per configured domain, read through libvirt.

Each domain's <hostdev>s come from its XML, the host's USB and PCI devices from listAllDevices. Both
are read again on every (re)connection, before every command, while initialize() waits for a device
(every REFRESH_INTERVAL) and when libvirt sends a node device lifecycle event (where the driver sends
them: the test driver sends none for USB or PCI, so the re-reads are what must never be stale).
"""

import concurrent.futures
import threading
import time

import libvirt

from ..shared.constants import VMState
from ..shared.errors import CamvirtError
from ..shared.hostdevs import (
    PCI,
    USB,
    describe,
    device_entry,
    find_node_device,
    id_text,
    parse_hostdevs,
    parse_node_device,
    understood,
)
from .connection import HypervisorUnavailable

# While initialize() waits for a missing device, libvirt is asked again this often (seconds).
REFRESH_INTERVAL = 1.0
# Errors that mean the connection itself failed (the next connection reads again), as opposed to a
# driver that cannot list node devices (then presence is unknown, and never a reason to wait).
_CONNECTION_ERRORS = (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_NO_CONNECT,
                      libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_ERR_AUTH_FAILED)
_LIST_FLAGS = {USB: libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_USB_DEV,
               PCI: libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV}


def read_domain_hostdevs(conn, name):
    """The Hostdevs in a domain's XML; [] for a domain libvirt does not know."""
    try:
        xml = conn.lookupByName(name).XMLDesc(0)
    except libvirt.libvirtError as e:
        if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return []
        raise
    return parse_hostdevs(xml)


def read_only_device_entries(uri, domain_names):
    """{domain: [report_status device entry]} read over a read-only connection to uri (what any user
    of the host may open), for `camvirt config` when camvirtd does not answer."""
    libvirt.registerErrorHandler(lambda _context, _error: None, None)  # we report our own
    conn = libvirt.openReadOnly(uri)
    try:
        hostdevs = {name: read_domain_hostdevs(conn, name) for name in domain_names}
        kinds = {h.kind for devs in hostdevs.values() for h in devs if understood(h)}
        nodes = read_node_devices(conn, kinds)
    finally:
        conn.close()
    return {name: [device_entry(h, find_node_device(h, nodes)) for h in devs]
            for name, devs in hostdevs.items()}


def read_node_devices(conn, kinds):
    """The host's NodeDevices of the given kinds ('usb', 'pci'), as libvirt lists them now."""
    flags = 0
    for kind in kinds:
        flags |= _LIST_FLAGS.get(kind, 0)
    if not flags:
        return []
    nodes = []
    for device in conn.listAllDevices(flags):
        try:
            node = parse_node_device(device.XMLDesc(0))
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_NODE_DEVICE:
                continue  # unplugged between the list and the look
            raise
        if node is not None:
            nodes.append(node)
    return nodes


def absent_message(cameras, domain, hostdev, name):
    """The line an operator reads when initialize() gave up on a device."""
    who = 'camera{} {}'.format('s' if len(cameras) > 1 else '', ', '.join(cameras))
    return '{} (domain {}): {} is not on this host: is the camera powered and plugged in?'.format(
        who, domain, describe(hostdev.kind, id_text(hostdev), name))


class DevicePresence:
    """The configured domains' passthrough devices and whether each is on the host, kept current
    through the hypervisor's connection. Follows Hypervisor as a connection listener."""

    def __init__(self, hypervisor, domain_names, log):
        self._hypervisor = hypervisor
        self._names = list(domain_names)
        self._log = log
        self._cond = threading.Condition()
        self._refresh_lock = threading.Lock()
        self._hostdevs = {name: [] for name in self._names}
        self._found = {name: [] for name in self._names}   # per hostdev: NodeDevice or None
        self._known_names = {}  # (kind, id text) -> the name libvirt gave when last seen
        self._waiting = set()   # domains initialize() is waiting for
        self._read_at = None    # time.monotonic() of the last successful read
        self._event_ids = {}    # id(conn) -> node device event callback id
        self._event_refresh_pending = False
        self._unlisted = None   # why libvirt cannot list the host's devices, when it cannot
        # Re-reads after node device events: off libvirt's event loop thread, one at a time (events
        # come in bursts and are coalesced), on a thread of our own that close() ends.
        self._refresher = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='device-refresh')
        hypervisor.add_connection_listener(self)

    def close(self):
        self._refresher.shutdown(wait=True)

    # --- hypervisor connection listener --------------------------------------------------------

    def connected(self, conn):
        """A new connection: subscribe to node device events where the driver has them, read all."""
        try:
            self._event_ids[id(conn)] = conn.nodeDeviceEventRegisterAny(
                None, libvirt.VIR_NODE_DEVICE_EVENT_ID_LIFECYCLE, self._on_node_device_event, None)
        except libvirt.libvirtError:
            pass  # a driver without node device events: the re-reads keep us current
        self.refresh_quietly(conn)

    def disconnected(self, conn):
        callback_id = self._event_ids.pop(id(conn), None)
        if callback_id is not None:
            try:
                conn.nodeDeviceEventDeregisterAny(callback_id)
            except libvirt.libvirtError:
                pass  # the connection is already gone

    def _on_node_device_event(self, conn, _device, _event, _detail, _opaque):
        # On libvirt's event loop thread, where a libvirt call would wait on the loop itself.
        with self._cond:
            if self._event_refresh_pending:
                return
            self._event_refresh_pending = True
        try:
            self._refresher.submit(self._refresh_after_event, conn)
        except RuntimeError:
            pass  # closing: nobody needs the devices any more

    def _refresh_after_event(self, conn):
        with self._cond:
            self._event_refresh_pending = False
        self.refresh_quietly(conn)

    # --- reading ----------------------------------------------------------------------------------

    def refresh(self, conn=None, max_age=0.0):
        """Reads every domain's hostdevs and the host's devices again, unless a read is younger than
        max_age seconds. Returns whether the view is now current; False while libvirt is away."""
        conn = conn or self._hypervisor.connection()
        if conn is None:
            return False
        with self._refresh_lock:
            if self._read_at is not None and time.monotonic() - self._read_at < max_age:
                return True
            hostdevs = {name: read_domain_hostdevs(conn, name) for name in self._names}
            kinds = {h.kind for devs in hostdevs.values() for h in devs if understood(h)}
            try:
                nodes, unlisted = read_node_devices(conn, kinds), None
            except libvirt.libvirtError as e:
                if e.get_error_code() in _CONNECTION_ERRORS:
                    raise
                nodes, unlisted = [], e.get_error_message()
            self.update(hostdevs, nodes, unlisted)
            self._read_at = time.monotonic()
        return True

    def refresh_quietly(self, conn=None, max_age=0.0):
        """refresh() that never raises: it runs on the connection thread and before commands, where
        nothing may stop them. Returns whether the view is now current."""
        try:
            return self.refresh(conn, max_age)
        except libvirt.libvirtError:
            return False  # the connection went: the next connection reads everything again
        except Exception as e:
            self._log.error('cannot read the passthrough devices: {!r}'.format(e))
            return False

    def update(self, hostdevs, nodes, unlisted=None):
        """Takes a new reading ({domain: [Hostdev]}, [NodeDevice]); logs an error for each device
        that vanished while its domain runs. unlisted: why libvirt could not list the host's devices
        (then whether any is present is unknown: shown so, never waited for)."""
        vanished = []
        with self._cond:
            if unlisted != self._unlisted and unlisted and any(map(understood, sum(hostdevs.values(), []))):
                self._log.warning('cannot list this host\'s devices ({}): passthrough devices are not '
                                  'checked'.format(unlisted))
            self._unlisted = unlisted
            for name in self._names:
                found = [find_node_device(h, nodes) for h in hostdevs.get(name, [])]
                for hostdev, node in zip(hostdevs.get(name, []), found):
                    if node is not None and node.label:
                        self._known_names[(hostdev.kind, id_text(hostdev))] = node.label
                if not unlisted:
                    vanished += [(name, h) for h in self._vanished(name, hostdevs.get(name, []), found)]
                self._hostdevs[name], self._found[name] = hostdevs.get(name, []), found
            self._cond.notify_all()
        for name, hostdev in vanished:
            if self.domain_active(name):
                self._log.error('domain {}: {} vanished from this host while the domain runs'.format(
                    name, describe(hostdev.kind, id_text(hostdev), self.name_of(hostdev))))

    def _vanished(self, name, hostdevs, found):
        """Hostdevs present in the last reading of domain `name` and absent in this one."""
        before = {h for h, n in zip(self._hostdevs[name], self._found[name]) if n is not None}
        return [h for h, n in zip(hostdevs, found) if n is None and h in before]

    def connection(self):
        return self._hypervisor.connection()

    def domain_active(self, name):
        return self._hypervisor.state(name) in VMState.UP

    def name_of(self, hostdev):
        """The device's name: libvirt's when it was last seen, else the domain XML's alias."""
        return self._known_names.get((hostdev.kind, id_text(hostdev))) or hostdev.alias

    # --- questions --------------------------------------------------------------------------------

    def missing(self, name):
        """The domain's hostdevs that must be on the host before it starts and are not: understood
        ones that are not optional."""
        with self._cond:
            if self._unlisted:
                return []
            return [h for h, n in zip(self._hostdevs[name], self._found[name])
                    if n is None and understood(h) and not h.optional]

    def absent_optional(self, name):
        with self._cond:
            if self._unlisted:
                return []
            return [h for h, n in zip(self._hostdevs[name], self._found[name])
                    if n is None and understood(h) and h.optional]

    def entries(self, name):
        """report_status()'s 'devices' list for one domain."""
        with self._cond:
            waiting = name in self._waiting
            entries = [device_entry(h, n, self.name_of(h), waiting and n is None and understood(h)
                                    and not h.optional)
                       for h, n in zip(self._hostdevs[name], self._found[name])]
            for entry in entries if self._unlisted else []:
                entry['present'] = None  # libvirt could not say
            return entries

    def wait_until_present(self, name, deadline):
        """Blocks until the domain's required devices are on the host or time.monotonic() passes
        deadline, reading libvirt again every REFRESH_INTERVAL (events wake it sooner). Returns the
        hostdevs still missing ([] when all are there)."""
        self.refresh_quietly(max_age=REFRESH_INTERVAL / 2)
        missing = self.missing(name)
        if not missing:
            return []
        with self._cond:
            self._waiting.add(name)
        try:
            while missing and time.monotonic() < deadline:
                with self._cond:
                    self._cond.wait(max(0.0, min(REFRESH_INTERVAL, deadline - time.monotonic())))
                self.refresh_quietly(max_age=REFRESH_INTERVAL / 2)
                missing = self.missing(name)
        finally:
            with self._cond:
                self._waiting.discard(name)
        return missing


class DevicesAbsent(CamvirtError):
    """A domain not started because devices it needs are not on the host; one line per device."""

    def __init__(self, problems):
        super().__init__('; '.join(problems))
        self.problems = problems


def start_when_present(presence, name, camera_ids, deadline, start, log):
    """Waits for the domain's required devices (see DevicePresence.wait_until_present), then calls
    start(name); raises DevicesAbsent at the deadline. An absent optional device is a warning. A
    domain already up is not waited for: it got its devices when it started, and one that vanished
    since was logged then; start() leaves it alone or resumes it."""
    if presence.domain_active(name):
        start(name)
        return
    missing = presence.wait_until_present(name, deadline)
    if missing and presence.connection() is None:
        raise HypervisorUnavailable('libvirt became unreachable while waiting for its devices')
    if missing:
        raise DevicesAbsent([absent_message(camera_ids, name, h, presence.name_of(h)) for h in missing])
    for hostdev in presence.absent_optional(name):
        log.warning('domain {}: optional {} is not on this host; starting without it'.format(
            name, describe(hostdev.kind, id_text(hostdev), presence.name_of(hostdev))))
    start(name)
