"""Serves simulated camds for the benchmark in a process of their own, until stdin closes.

    python bench/camds.py answers:OBJECT_ID:PORT [hung:OBJECT_ID:PORT ...]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rockit.camvirt.shared.registry import DaemonAddress  # noqa: E402
from testworld.simcamd import HungCamd, SimulatedCamd  # noqa: E402


def main():
    servers = []
    for spec in sys.argv[1:]:
        kind, object_id, port = spec.split(':')
        address = DaemonAddress(object_id, object_id, '127.0.0.1', int(port))
        servers.append(HungCamd(address).start() if kind == 'hung' else SimulatedCamd(address, object_id).start())
    print('ready', flush=True)
    sys.stdin.read()
    for server in servers:
        server.stop()


if __name__ == '__main__':
    main()
