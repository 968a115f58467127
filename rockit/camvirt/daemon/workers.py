"""The threads camvirtd's commands and queries run their parallel work on: one pool, owned by the
daemon and ended at stop, instead of a thread (or a pool) per call."""

import concurrent.futures

# Enough for every domain and camera of a host at once (a config has at most a few dozen) while a
# command and a crash restart run, with dashboard queries beside them.
MAX_WORKERS = 64


class Workers:
    def __init__(self, max_workers=MAX_WORKERS):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix='camvirtd-work')

    def run_parallel(self, function, items, timeout=None):
        """[function(item)] for each item, run at once; an exception or, for an item still running at
        `timeout`, TimeoutError is that item's result (its call finishes on its own: a libvirt call
        cannot be cancelled)."""
        if not items:
            return []
        futures = [self._pool.submit(function, item) for item in items]
        done, _ = concurrent.futures.wait(futures, timeout=timeout)
        return [_result(future) if future in done else TimeoutError() for future in futures]

    def submit(self, function, *args):
        """Runs function(*args) on the pool; no result is kept (it reports for itself)."""
        self._pool.submit(function, *args)

    def stop(self):
        """Waits for the work under way (every piece is bounded by its own timeout); drops the rest."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def _result(future):
    error = future.exception()
    return error if error is not None else future.result()
