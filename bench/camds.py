"""Serves simulated camds for the benchmark in a process of their own, until stdin closes. A line
`calls` on stdin is answered with one JSON line: {object id: report_status() calls so far}.

    python bench/camds.py answers:OBJECT_ID:PORT [hung:OBJECT_ID:PORT ...]

(any behaviour of testworld.simcamd: answers, uninitialised, initialising, hung, dripping)
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rockit.camvirt.shared.registry import DaemonAddress  # noqa: E402
from testworld.simcamd import start_camd  # noqa: E402


def main():
    servers = []
    for spec in sys.argv[1:]:
        kind, object_id, port = spec.split(':')
        address = DaemonAddress(object_id, object_id, '127.0.0.1', int(port))
        servers.append(start_camd(address, object_id, kind))
    print('ready', flush=True)
    for line in sys.stdin:
        if line.strip() == 'calls':
            print(json.dumps({server.address.object_id: server.camera.calls for server in servers
                              if hasattr(server, 'camera')}), flush=True)
    for server in servers:
        server.stop()


if __name__ == '__main__':
    main()
