"""The WebSocket side: connected clients by id, their feature flags, and one ordered outbox for every message."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ._faults import Faults
from ._messages import json_frame

__all__ = ["Connection", "Hub"]

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    sid: str
    flags: dict[str, Any] = field(default_factory=dict)
    sent: int = 0
    dropped: bool = False


class Hub:
    """Routes messages as ComfyUI's ``send_sync`` does: ``sid=None`` goes to every socket, else to that client.

    Everything passes through one queue drained by one task, so messages keep the order they were produced in.
    That task must never wait on one client for long: a socket that takes longer than ``send_timeout_s`` to
    accept a message (its client stopped reading) is dropped, or it would hold every other client's messages.
    """

    def __init__(self, faults: Faults, send_timeout_s: float = 10.0) -> None:
        self._faults = faults
        self._send_timeout = send_timeout_s
        self.sockets: dict[str, Connection] = {}
        self._outbox: asyncio.Queue[tuple[str | bytes, str | None]] = asyncio.Queue()
        self._closing: set[asyncio.Task[None]] = set()

    # EventSink
    def send(self, event: str, data: dict[str, Any], sid: str | None) -> None:
        self._outbox.put_nowait((json_frame(event, data), sid))

    def send_binary(self, frame: bytes, sid: str | None) -> None:
        self._outbox.put_nowait((frame, sid))

    def supports_preview_metadata(self, sid: str | None) -> bool:
        conn = self.sockets.get(sid) if sid is not None else None
        return conn is not None and conn.flags.get("supports_preview_metadata") is True

    async def flush(self) -> None:
        await self._outbox.join()

    # connections
    def register(self, sid: str, ws: web.WebSocketResponse) -> Connection:
        conn = Connection(ws, sid)
        self.sockets[sid] = conn  # a reconnect with the same clientId replaces the old socket
        return conn

    def unregister(self, conn: Connection) -> None:
        if self.sockets.get(conn.sid) is conn:
            del self.sockets[conn.sid]

    async def send_now(self, conn: Connection, payload: str | bytes) -> None:
        """Send to one socket outside the queue (the greeting a socket gets on connect)."""
        await self._deliver(conn, payload)

    async def run(self) -> None:
        while True:
            payload, sid = await self._outbox.get()
            try:
                if sid is None:
                    targets = list(self.sockets.values())
                else:
                    conn = self.sockets.get(sid)
                    targets = [conn] if conn is not None else []
                for conn in targets:
                    await self._deliver(conn, payload)
            finally:
                self._outbox.task_done()

    async def _deliver(self, conn: Connection, payload: str | bytes) -> None:
        if conn.ws.closed or conn.dropped:
            return
        try:
            async with asyncio.timeout(self._send_timeout):
                if isinstance(payload, bytes):
                    await conn.ws.send_bytes(payload)
                else:
                    await conn.ws.send_str(payload)
        except TimeoutError:
            log.warning("WebSocket client %s stopped reading; dropping it", conn.sid)
            self.drop(conn)
            return
        except Exception as exc:  # a client that went away must not stop the others
            log.debug("dropping a message for %s: %s", conn.sid, exc)
            return
        conn.sent += 1
        limit = self._faults.ws_drop_after
        if limit is not None and conn.sent >= limit:
            self.drop(conn)

    def drop(self, conn: Connection) -> None:
        """Close a socket from the server side without waiting for the handshake (the outbox must not stall)."""
        conn.dropped = True
        task = asyncio.ensure_future(self._close(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close(conn: Connection) -> None:
        with contextlib.suppress(Exception):
            await conn.ws.close(code=1001, message=b"emulated connection drop")

    def drop_all(self) -> None:
        for conn in list(self.sockets.values()):
            self.drop(conn)

    async def close_all(self) -> None:
        """Close every socket (server shutdown)."""
        for conn in list(self.sockets.values()):
            conn.dropped = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"server shutdown"), 2.0)
