"""Serve an aiohttp application on loopback: in the foreground for the CLI, or from a thread for tests."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

__all__ = ["AppFactory", "PortInUseError", "ServerThread", "bind_socket", "serve_forever"]

T = TypeVar("T")
AppFactory = Callable[[], web.Application | Awaitable[web.Application]]
_SHUTDOWN_TIMEOUT_S = 5.0
#: Generous: start-up hooks import node registries and spawn tasks, but a hung hook must not hang the caller.
_STARTUP_TIMEOUT_S = 60.0


class PortInUseError(OSError):
    """The requested address is already taken by another process."""


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket, turning EADDRINUSE into a message a person can act on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                exc.errno, f"port {port} on {host} is already in use; stop what holds it or pick --port"
            ) from exc
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def _make(factory: AppFactory) -> web.Application:
    app = factory()
    if not isinstance(app, web.Application):
        app = await app
    return app


async def _start(factory: AppFactory, sock: socket.socket) -> web.AppRunner:
    runner = web.AppRunner(
        await _make(factory), handle_signals=False, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve_forever(factory: AppFactory, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly. ``on_ready`` gets the base URL once listening."""

    async def main() -> None:
        sock = bind_socket(host, port)
        runner = await _start(factory, sock)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        on_ready(_url(sock))
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


class ServerThread:
    """An aiohttp application served from its own event loop in a daemon thread.

    ``with ServerThread(factory) as server: httpx.get(server.url + "/...")``. ``call`` runs a coroutine on the
    server's loop, so a test can reach into emulator state without racing its handlers.
    """

    def __init__(self, factory: AppFactory, host: str = "127.0.0.1", port: int = 0) -> None:
        self._factory = factory
        self._host = host
        self._port = port
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.app: web.Application | None = None
        self.url = ""

    def start(self) -> ServerThread:
        sock = bind_socket(self._host, self._port)
        self.url = _url(sock)
        self._thread = threading.Thread(target=self._run, args=(sock,), name=f"server {self.url}", daemon=True)
        self._thread.start()
        if not self._ready.wait(_STARTUP_TIMEOUT_S):
            self.stop()
            sock.close()
            raise RuntimeError(f"server at {self.url} did not start within {_STARTUP_TIMEOUT_S:.0f} s")
        if self._error is not None:
            sock.close()
            raise RuntimeError(f"server at {self.url} failed to start") from self._error
        return self

    def _run(self, sock: socket.socket) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                runner = await _start(self._factory, sock)
                self.app = runner.app
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()

        asyncio.run(main())

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the server's loop and return its result."""
        assert self._loop is not None, "server not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=_SHUTDOWN_TIMEOUT_S + 5)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
