"""A TCP relay in front of the shared Postgres that a test can cut: a database outage for one server under test,
without stopping the Postgres every other test and agent uses."""

from __future__ import annotations

import asyncio
import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class PostgresProxy:
    """Relays 127.0.0.1:`port` to the Postgres of `url`. `cut()` closes every relayed connection and refuses new
    ones (Postgres down); `refuse_new()` only refuses new ones (existing sessions live on); `restore()` listens
    again."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        userinfo = parts.netloc.rpartition("@")[0]
        self.url = urlunsplit(parts._replace(netloc=(f"{userinfo}@" if userinfo else "") + f"127.0.0.1:{self.port}"))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._listener: asyncio.Server | None = None
        self._upstream: dict[asyncio.StreamWriter, asyncio.StreamWriter] = {}  # client side → Postgres side

    def __enter__(self) -> PostgresProxy:
        self._thread.start()
        self.restore()
        return self

    def __exit__(self, *exc) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def restore(self) -> None:
        async def listen() -> None:
            if self._listener is None:
                self._listener = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

        self._run(listen())

    def refuse_new(self) -> None:
        async def stop_listening() -> None:
            if self._listener is not None:
                self._listener.close()
                self._listener = None

        self._run(stop_listening())

    def cut(self) -> None:
        self.refuse_new()

        async def close_all() -> None:
            for client, upstream in list(self._upstream.items()):
                client.transport.abort()
                upstream.transport.abort()

        self._run(close_all())

    def client_ports(self) -> set[int]:
        """The local ports of the relay's connections to Postgres (pg_stat_activity's client_port for them)."""

        async def ports() -> set[int]:
            return {upstream.get_extra_info("sockname")[1] for upstream in self._upstream.values()}

        return self._run(ports())

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._upstream[writer] = up_writer

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        finally:
            self._upstream.pop(writer, None)
