"""The libvirt side, the only place libvirt is imported: the connection and its repair, domain states from
events, waits and actions, node devices.
"""
