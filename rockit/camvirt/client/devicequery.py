"""The passthrough devices `camvirt config` lists: asked of camvirtd (on the host they are on), else
read from libvirt over a read-only connection (what any user of the host may open), else said to be
unknown, and why: the rest of the config needs no server. The libvirt side (and so libvirt-python)
is imported only when used: the client package does not need it."""

import threading

LIBVIRT_TIMEOUT = 5.0


def devices_from_libvirt(uri, domain_names):
    """{domain: [report_status device entry]} read over a read-only connection to uri: the client's one
    arrow into the libvirt side. Raises ImportError without libvirt-python, libvirt.libvirtError
    when libvirt says no."""
    from ..virt.devices import read_only_device_entries  # only when used: it needs libvirt-python
    return read_only_device_entries(uri, domain_names)


def _bounded(function, timeout):
    """function()'s result, or TimeoutError when it takes longer than timeout (a hung libvirtd; the
    thread is left to finish, as a libvirt call cannot be cancelled)."""
    outcome = {}

    def run():
        try:
            outcome['value'] = function()
        except Exception as e:
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
    except Exception:
        pass  # not running, or not reachable from here: libvirt may still tell
    try:
        devices = _bounded(lambda: devices_from_libvirt(uri, domain_names), LIBVIRT_TIMEOUT)
        return devices, 'libvirt at {} (camvirtd did not answer)'.format(uri)
    except ImportError:
        problem = 'libvirt-python is not installed'
    except Exception as e:
        problem = str(e) or type(e).__name__
    return None, 'unknown: camvirtd did not answer, libvirt at {}: {}'.format(uri, problem)
