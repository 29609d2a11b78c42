"""A real TCP proxy on loopback that breaks connections on purpose: the network faults a job meets.

It sits between the jobs and an S3 API server (moto's) and forwards bytes both ways. Faults:

- ``cut_every = n``: every n-th request (counted over all connections) has its response cut after a
  random number of bytes (up to ``max_cut_bytes`` for reads, within the status line for writes, whose
  responses are short): a reset mid-response. A cut of 0 bytes drops the request itself.
- ``refuse``: a regular expression; a request whose first line matches is dropped before the server
  sees it, every time (a persistent fault on those objects).

``cuts`` counts the faults by the request's method, so a test can show they happened.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
from collections import Counter

_REQUEST_LINE = re.compile(rb"^(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/1\.[01]\r\n")


class FaultProxy:
    def __init__(self, target_port: int, seed: int = 0):
        self.target_port = target_port
        self.cut_every = 0
        self.max_cut_bytes = 4096
        self.refuse: re.Pattern | None = None
        self.cuts: Counter = Counter()
        self.requests = 0
        self.paths: list[str] = []  # of every request, in order
        self._rng = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FaultProxy":
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, "127.0.0.1", 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close():
            self._server.close()
            await self._server.wait_closed()
            # End the connections still open (a client's keep-alive pool) here, while the loop runs: left
            # pending, each would be finalised by some later garbage collection, raise "Event loop is
            # closed" and print a traceback from inside whatever code the collection interrupted.
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await asyncio.sleep(0)  # the aborted transports close their sockets on the next turn

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _connection(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        budget = {"bytes": None}  # bytes of response left before the cut; None: no cut pending
        upstream = asyncio.ensure_future(self._upstream(client_r, server_w, client_w, budget))
        try:
            while data := await server_r.read(65536):
                if budget["bytes"] is not None:
                    data = data[: budget["bytes"]]
                    budget["bytes"] -= len(data)
                    if budget["bytes"] <= 0:
                        client_w.write(data)
                        break  # cut: both sides are closed below
                client_w.write(data)
                await client_w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            upstream.cancel()
            for w in (client_w, server_w):
                w.transport.abort()  # a reset, not a polite close

    async def _upstream(self, client_r, server_w, client_w, budget) -> None:
        try:
            while data := await client_r.read(65536):
                m = _REQUEST_LINE.match(data)
                if m:
                    self.requests += 1
                    self.paths.append(m.group(2).decode())
                    method = m.group(1).decode()
                    if self.refuse is not None and self.refuse.search(m.group(2).decode()):
                        self.cuts[method] += 1
                        client_w.transport.abort()
                        server_w.transport.abort()
                        return
                    if self.cut_every and self.requests % self.cut_every == 0:
                        self.cuts[method] += 1
                        budget["bytes"] = self._rng.randint(0, self.max_cut_bytes if method == "GET" else 12)
                        if budget["bytes"] == 0:
                            client_w.transport.abort()
                            server_w.transport.abort()
                            return
                server_w.write(data)
                await server_w.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
