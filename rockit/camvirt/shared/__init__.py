"""What the daemon and the client share: protocol codes, config, registry layers, safe JSON, passthrough devices
as data, quoting, times. No libvirt, no rich.
"""
