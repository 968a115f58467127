"""A TCP relay that delays every byte by a fixed time each way: the site world's slow link.

This kernel has no netem qdisc, so a fixed latency needs user space on the path. The relay listens
where clients expect the server and passes each chunk on `delay` seconds after it arrived, in order;
chunks are not held back by one another, so the delay is a latency, not a bandwidth limit. (The TCP
handshake itself is not delayed: the relay accepts at once.)
"""

import asyncio
import threading

CHUNK = 65536


class DelayingRelay:
    """Listens on (host, port) and relays each connection to target (host, port), `delay` s each way,
    on an event loop thread of its own until stop()."""

    def __init__(self, listen, target, delay):
        self.listen = listen
        self.target = target
        self.delay = delay
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopped = None
        self._error = None
        self._thread = threading.Thread(target=self._run, name='delay-relay', daemon=True)

    def start(self):
        """Starts listening; OSError when it cannot bind."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self):
        if self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout=5)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self):
        self._stopped = asyncio.Event()
        try:
            server = await asyncio.start_server(self._relay, self.listen[0], self.listen[1])
        except OSError as e:
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        async with server:
            await self._stopped.wait()
        # The connections still open end with the relay.
        relays = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
        await asyncio.sleep(0)  # the transports' close callbacks

    async def _relay(self, client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(self._pump(client_reader, server_writer),
                                 self._pump(server_reader, client_writer), return_exceptions=True)
        finally:
            server_writer.close()
            client_writer.close()

    async def _pump(self, reader, writer):
        """Passes what `reader` gives to `writer`, each chunk `delay` s after it came; half-closes
        `writer` (after the delay) when `reader` ends, as the sender did."""
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()
        delivery = asyncio.ensure_future(self._deliver(queue, writer))
        try:
            while True:
                try:
                    data = await reader.read(CHUNK)
                except OSError:
                    data = b''
                queue.put_nowait((loop.time() + self.delay, data))
                if not data or delivery.done():
                    break
        finally:
            await delivery

    @staticmethod
    async def _deliver(queue, writer):
        loop = asyncio.get_running_loop()
        try:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except OSError:
            writer.close()  # the other end is gone: so is this direction
