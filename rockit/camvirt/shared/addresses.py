"""Control machines compared as IP addresses, not as strings.

On a dual-stack listener (::) an IPv4 caller arrives as ::ffff:10.2.6.160, and the registry may write
an IPv6 address in long form or with upper-case letters: comparing ipaddress objects, with IPv4-mapped
IPv6 addresses taken as their IPv4 address, makes each of these the same machine."""

import ipaddress


def normalised(text):
    """The ipaddress object for `text` (an IPv4-mapped IPv6 address as its IPv4 address), or None when
    it is not an IP address. A scope id (fe80::1%eth0) is dropped: the address names the machine."""
    if not isinstance(text, str):
        return None
    try:
        address = ipaddress.ip_address(text.split('%', 1)[0])
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def canonical(text):
    """`text` as the canonical string of its normalised address, or `text` itself when it is not
    an IP address (a host name stays as it was)."""
    address = normalised(text)
    return str(address) if address is not None else text


class ControlMachines:
    """The set of control machines' addresses; `ip in control` for a caller's IP string."""

    def __init__(self, ips):
        self._addresses = frozenset(a for a in (normalised(ip) for ip in ips) if a is not None)

    def __contains__(self, ip):
        address = normalised(ip)
        return address is not None and address in self._addresses

    def __len__(self):
        return len(self._addresses)
