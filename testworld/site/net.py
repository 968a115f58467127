"""The site world's network: network namespaces joined by veth pairs and bridges, from a plan.

Every namespace of one world is named `<prefix>-<role>`, the prefix unique to the world (written to
its folder before anything is made), so that two worlds at once never collide and the next start on a
folder finds what a killed world left. Nothing is made in the machine's own namespace: a veth pair is
created inside one of the world's namespaces with its peer moved straight into another. No namespace
has a default route, and none forwards: traffic stays on the links it was sent on.

    switch ns: bridge `br0`, one port per site host (tcs, das1, das2, dashboard)
    host ns:   `site0` (the host's site address) ...
    DAS ns:    ... and bridge `cambr` (the DAS host's camera network address), one port per camera VM
    camera ns: `eth0` (the VM's address)
"""

import os
import signal
import subprocess
import time

IP_TIMEOUT = 10
SWITCH = 'switch'
SITE_BRIDGE = 'br0'
SITE_IF = 'site0'
CAMERA_BRIDGE = 'cambr'
CAMERA_IF = 'eth0'
NFT_TABLE = 'camvirt_site'
KILL_WAIT = 5.0


class NetError(Exception):
    """An ip or nft command failed; the message names the command and what it said."""


def run(*command, check=True):
    """Runs a command (ip, nft) bounded in time; NetError with its stderr when it fails."""
    try:
        result = subprocess.run(list(command), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=IP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NetError('{}: {}'.format(' '.join(command), e)) from None
    if check and result.returncode != 0:
        raise NetError('{}: {}'.format(' '.join(command), result.stderr.strip() or 'exit status {}'.format(
            result.returncode)))
    return result.stdout


def ns_name(prefix, role):
    return '{}-{}'.format(prefix, role)


class SiteNetwork:
    """Builds and removes one world's namespaces and links.

    hosts: {role: site address}; camera_nets: {DAS role: (DAS camera-network address,
    {camera role: address})}; every address is /24."""

    def __init__(self, prefix, hosts, camera_nets):
        self.prefix = prefix
        self.hosts = dict(hosts)
        self.camera_nets = dict(camera_nets)

    def ns(self, role):
        return ns_name(self.prefix, role)

    def roles(self):
        cameras = [cam for _das, (_addr, cams) in sorted(self.camera_nets.items()) for cam in cams]
        return [SWITCH] + list(self.hosts) + cameras

    def build(self):
        """Makes every namespace and link; NetError (after which remove() takes away what was made)."""
        for role in self.roles():
            run('ip', 'netns', 'add', self.ns(role))
            run('ip', '-n', self.ns(role), 'link', 'set', 'lo', 'up')
        switch = self.ns(SWITCH)
        self._bridge(switch, SITE_BRIDGE, None)
        for role, address in self.hosts.items():
            self._plug(switch, SITE_BRIDGE, role, self.ns(role), SITE_IF, address)
        for das, (das_address, cameras) in self.camera_nets.items():
            self._bridge(self.ns(das), CAMERA_BRIDGE, das_address)
            for cam, address in cameras.items():
                self._plug(self.ns(das), CAMERA_BRIDGE, cam, self.ns(cam), CAMERA_IF, address)

    @staticmethod
    def _bridge(ns, bridge, address):
        run('ip', '-n', ns, 'link', 'add', 'name', bridge, 'type', 'bridge')
        if address:
            run('ip', '-n', ns, 'addr', 'add', address + '/24', 'dev', bridge)
        run('ip', '-n', ns, 'link', 'set', 'dev', bridge, 'up')

    @staticmethod
    def _plug(bridge_ns, bridge, port, host_ns, interface, address):
        """A veth pair: `port` on the bridge, `interface` with `address` in host_ns."""
        run('ip', '-n', bridge_ns, 'link', 'add', 'name', port, 'type', 'veth', 'peer', 'name', interface,
            'netns', host_ns)
        run('ip', '-n', bridge_ns, 'link', 'set', 'dev', port, 'master', bridge, 'up')
        run('ip', '-n', host_ns, 'addr', 'add', address + '/24', 'dev', interface)
        run('ip', '-n', host_ns, 'link', 'set', 'dev', interface, 'up')

    # --- faults -----------------------------------------------------------------------------------

    def set_site_link(self, role, up):
        """Cuts (or restores) a host's link to the site network at the switch, as a pulled cable."""
        run('ip', '-n', self.ns(SWITCH), 'link', 'set', 'dev', role, 'up' if up else 'down')

    def add_loss(self, camera_role, percent):
        """Drops `percent` % of the packets a camera VM sends and of those it receives, at random."""
        if not percent:
            return
        ns = self.ns(camera_role)
        rules = ('add table inet {t}\n'
                 'add chain inet {t} input {{ type filter hook input priority 0; }}\n'
                 'add chain inet {t} output {{ type filter hook output priority 0; }}\n'
                 'add rule inet {t} input iifname "{i}" numgen random mod 100 < {p} counter drop\n'
                 'add rule inet {t} output oifname "{i}" numgen random mod 100 < {p} counter drop\n').format(
            t=NFT_TABLE, i=CAMERA_IF, p=int(percent))
        try:
            result = subprocess.run(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], input=rules, text=True,
                                    capture_output=True, timeout=IP_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise NetError('nft in {}: {}'.format(ns, e)) from None
        if result.returncode != 0:
            raise NetError('nft in {}: {}'.format(ns, result.stderr.strip()))

    # --- removal ----------------------------------------------------------------------------------

    def remove(self):
        """Removes this world's namespaces, ending the processes in them first."""
        remove_namespaces(self.prefix)


def world_namespaces(prefix):
    """The names of the namespaces that exist with this world's prefix."""
    names = [line.split()[0] for line in run('ip', 'netns', 'list').splitlines() if line.strip()]
    return sorted(n for n in names if n.startswith(prefix + '-'))


def namespace_pids(ns):
    """The processes in a namespace (ip netns pids compares each process's /proc/PID/ns/net)."""
    return [int(p) for p in run('ip', 'netns', 'pids', ns, check=False).split() if p.isdigit()]


def remove_namespaces(prefix):
    """Kills every process in the world's namespaces, then deletes them (their links and bridges go
    with them). Returns the namespace names it removed. SIGKILL at once: by now the world has stopped
    what it stops gently, and what is left belongs to a world that is gone."""
    names = world_namespaces(prefix)
    pids = {pid for ns in names for pid in namespace_pids(ns)}
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + KILL_WAIT
    while pids and time.monotonic() < deadline:
        pids = {pid for pid in pids if _alive(pid)}
        time.sleep(0.02)
    for ns in names:
        run('ip', 'netns', 'del', ns, check=False)
    return names


def _alive(pid):
    try:
        with open('/proc/{}/stat'.format(pid)) as f:
            return f.read().split(') ')[-1][0] != 'Z'
    except OSError:
        return False
