"""The passthrough devices `camvirt config` lists: asked of camvirtd (on the host they are on), else
read from libvirt over a read-only connection (what any user of the host may open), else said to be
unknown, and why: the rest of the config needs no server. libvirt-python is imported only here and only when used: the
client package does not need it."""

import threading

LIBVIRT_TIMEOUT = 5.0


def devices_from_libvirt(uri, domain_names):
    """{domain: [report_status device entry]} read over a read-only connection to uri. Raises
    ImportError without libvirt-python, libvirt.libvirtError when libvirt says no."""
    import libvirt  # pylint: disable=import-outside-toplevel

    from .virt.devices import read_domain_hostdevs, read_node_devices  # pylint: disable=import-outside-toplevel
    from .shared.hostdevs import device_entry, find_node_device, understood  # pylint: disable=import-outside-toplevel

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


def _bounded(function, timeout):
    """function()'s result, or TimeoutError when it takes longer than timeout (a hung libvirtd; the
    thread is left to finish, as a libvirt call cannot be cancelled)."""
    outcome = {}

    def run():
        try:
            outcome['value'] = function()
        except Exception as e:  # pylint: disable=broad-except
            outcome['error'] = e

    thread = threading.Thread(target=run, name='device-query', daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError('no answer within {} s'.format(timeout))
    if 'error' in outcome:
        raise outcome['error']
    return outcome['value']


def config_devices(uri, domain_names, ask_daemon):
    """({domain: [entries]}, source): camvirtd's view when it answers (it runs on the host the
    devices are on); else libvirt's at uri read here; else None and why neither told.
    ask_daemon() returns camvirtd's report_status() or raises."""
    try:
        status = ask_daemon()
        return {d['name']: d.get('devices') or [] for d in status['domains']}, 'camvirtd'
    except Exception:  # pylint: disable=broad-except
        pass  # not running, or not reachable from here: libvirt may still tell
    try:
        devices = _bounded(lambda: devices_from_libvirt(uri, domain_names), LIBVIRT_TIMEOUT)
        return devices, 'libvirt at {} (camvirtd did not answer)'.format(uri)
    except ImportError:
        problem = 'libvirt-python is not installed'
    except Exception as e:  # pylint: disable=broad-except
        problem = str(e) or type(e).__name__
    return None, 'unknown: camvirtd did not answer, libvirt at {}: {}'.format(uri, problem)
