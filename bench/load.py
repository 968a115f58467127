"""A load client for the benchmark, run as its own process so that its work does not share a GIL with
the servers it measures. Prints one JSON object: latencies (seconds) and errors.

    python bench/load.py URI METHOD ARG CLIENTS REQUESTS_PER_CLIENT [--new-proxy-per-call] [--source IP]

--source: connect from this loopback address (the dashboard's host, not a control machine).
"""

import json
import socket
import sys
import threading
import time

import Pyro4
import Pyro4.errors
import Pyro4.socketutil

CALL_TIMEOUT = 5


def make_proxy(uri):
    proxy = Pyro4.Proxy(uri)
    proxy._pyroTimeout = CALL_TIMEOUT
    return proxy


def client(uri, method, args, requests, fresh, latencies, errors, failed):
    proxy = None if fresh else make_proxy(uri)
    for _ in range(requests):
        start = time.perf_counter()
        try:
            if fresh:
                # The dashboard's pattern: a proxy (so a TCP connection) per call.
                with make_proxy(uri) as once:
                    getattr(once, method)(*args)
            else:
                getattr(proxy, method)(*args)
            latencies.append(time.perf_counter() - start)
        except Exception as e:
            errors.append(type(e).__name__)
            failed.append(time.perf_counter() - start)


def connect_from(source):
    """Makes Pyro4's proxies in this process connect from `source`."""
    def create_socket(connect=None, timeout=None, nodelay=True, **_):
        sock = socket.create_connection(connect, timeout=timeout, source_address=(source, 0))
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    Pyro4.socketutil.createSocket = create_socket


def main():
    uri, method, arg, clients, requests = sys.argv[1:6]
    fresh = '--new-proxy-per-call' in sys.argv
    if '--source' in sys.argv:
        connect_from(sys.argv[sys.argv.index('--source') + 1])
    args = () if arg == '-' else (arg,)
    latencies, errors, failed = [], [], []
    threads = [threading.Thread(target=client, args=(uri, method, args, int(requests), fresh, latencies, errors,
                                                     failed))
               for _ in range(int(clients))]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    # errors: how many calls raised; error_types and error_latencies: which, and how long each took.
    print(json.dumps({'latencies': latencies, 'errors': len(errors), 'elapsed': elapsed,
                      'error_types': sorted(set(errors)), 'error_latencies': failed}))


if __name__ == '__main__':
    main()
