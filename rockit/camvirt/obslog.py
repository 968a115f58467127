"""Messages for the operators: printed to stdout (the systemd journal) at once, and sent to the
observatory log daemon from a background thread, so that an unreachable log daemon never delays a
command."""

import datetime
import queue
import sys
import threading
import time

import Pyro4

LOG_CALL_TIMEOUT = 2.0
# After the log daemon failed to answer, wait this long before trying it again (messages meanwhile
# are kept only in the journal).
LOG_RETRY_DELAY = 30.0
MAX_QUEUED = 1000


class ObservatoryLog:
    """info/warning/error under one log table, to stdout and to the observatory log daemon."""

    def __init__(self, table, daemon_address=None, stream=None):
        self.table = table
        self._address = daemon_address
        self._stream = stream or sys.stdout
        self._print_lock = threading.Lock()
        self._queue = queue.Queue(MAX_QUEUED)
        self._retry_at = 0.0
        if daemon_address is not None:
            threading.Thread(target=self._send_forever, name='observatory-log', daemon=True).start()

    def info(self, message):
        self._write('log_info', 'INFO', message)

    def warning(self, message):
        self._write('log_warning', 'WARNING', message)

    def error(self, message):
        self._write('log_error', 'ERROR', message)

    def _write(self, method, level, message):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S')
        with self._print_lock:
            print('{} {}: {}'.format(stamp, level, message), file=self._stream, flush=True)
        if self._address is not None:
            try:
                self._queue.put_nowait((method, message))
            except queue.Full:
                pass  # the journal has it; the log daemon is far behind or gone

    def _send_forever(self):
        while True:
            method, message = self._queue.get()
            if time.monotonic() < self._retry_at:
                continue
            try:
                with Pyro4.Proxy(self._address.uri) as proxy:
                    proxy._pyroTimeout = LOG_CALL_TIMEOUT  # pylint: disable=protected-access
                    getattr(proxy, method)(self.table, message)
            except Exception:  # pylint: disable=broad-except
                self._retry_at = time.monotonic() + LOG_RETRY_DELAY
