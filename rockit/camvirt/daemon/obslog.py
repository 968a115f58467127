"""Messages for the operators: printed to stdout (the systemd journal) at once, and sent to the
observatory log daemon from a thread of the log's own, so that an unreachable log daemon never delays
a command. close() sends what is queued, giving up on a log daemon that does not answer."""

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
# What close() waits for the queued lines to reach the log daemon.
CLOSE_TIMEOUT = LOG_CALL_TIMEOUT + 0.5
_END = None  # queued by close(): the sender ends once it has sent what came before


class ObservatoryLog:
    """info/warning/error under one log table, to stdout and to the observatory log daemon."""

    def __init__(self, table, daemon_address=None, stream=None):
        self.table = table
        self._address = daemon_address
        self._stream = stream or sys.stdout
        self._print_lock = threading.Lock()
        self._queue = queue.Queue(MAX_QUEUED)
        self._retry_at = 0.0
        self._sender = None
        if daemon_address is not None:
            self._sender = threading.Thread(target=self._send_until_closed, name='observatory-log', daemon=True)
            self._sender.start()

    def close(self, timeout=CLOSE_TIMEOUT):
        """Sends the lines queued so far, for at most `timeout` seconds, and ends the sender thread."""
        if self._sender is None:
            return
        try:
            self._queue.put(_END, timeout=timeout)
        except queue.Full:
            return  # still stuck on a log daemon that does not answer: the journal has every line
        self._sender.join(timeout)
        self._sender = None

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

    def _send_until_closed(self):
        while True:
            item = self._queue.get()
            if item is _END:
                return
            method, message = item
            if time.monotonic() < self._retry_at:
                continue
            try:
                with Pyro4.Proxy(self._address.uri) as proxy:
                    proxy._pyroTimeout = LOG_CALL_TIMEOUT  # pylint: disable=protected-access
                    getattr(proxy, method)(self.table, message)
            except Exception:  # pylint: disable=broad-except
                self._retry_at = time.monotonic() + LOG_RETRY_DELAY
