"""A plain test client for the emulator: httpx for HTTP, ``websockets`` (sync) for the socket."""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Callable
from typing import Any

from websockets.sync.client import ClientConnection, connect

Frame = dict[str, Any] | bytes
TIMEOUT = 20.0


class WsClient:
    """One WebSocket to the emulator; ``frames`` keeps everything received, greeting included."""

    def __init__(self, ws_url: str, client_id: str | None = None, feature_flags: bool = False) -> None:
        url = ws_url if client_id is None else f"{ws_url}?clientId={client_id}"
        self._stack = contextlib.ExitStack()
        self.conn: ClientConnection = self._stack.enter_context(connect(url, open_timeout=TIMEOUT, max_size=None))
        self.frames: list[Frame] = []
        self.greeting = self._json(self.recv())
        if feature_flags:
            self.conn.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
            self.flags_reply = self._json(self.recv())

    @staticmethod
    def _json(frame: Frame) -> dict[str, Any]:
        assert isinstance(frame, dict), f"expected a JSON message, got {frame!r}"
        return frame

    def recv(self, timeout: float = TIMEOUT) -> Frame:
        raw = self.conn.recv(timeout=timeout)
        frame: Frame = raw if isinstance(raw, bytes) else json.loads(raw)
        self.frames.append(frame)
        return frame

    def until(self, done: Callable[[Frame], bool], timeout: float = TIMEOUT) -> list[Frame]:
        """Frames received from now until (and including) the first one ``done`` accepts."""
        start = len(self.frames)
        while True:
            frame = self.recv(timeout)
            if done(frame):
                return self.frames[start:]

    def until_type(self, event: str, timeout: float = TIMEOUT, **data: Any) -> list[Frame]:
        def matches(frame: Frame) -> bool:
            return (
                isinstance(frame, dict)
                and frame.get("type") == event
                and all(frame["data"].get(k) == v for k, v in data.items())
            )

        return self.until(matches, timeout)

    def until_done(self, prompt_id: str, timeout: float = TIMEOUT) -> list[Frame]:
        """Frames up to the end marker ``executing`` with ``node: null`` for ``prompt_id``."""
        return self.until_type("executing", timeout, node=None, prompt_id=prompt_id)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> WsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def summary(frames: list[Frame]) -> list[str]:
    """The recordings' one-line ``ws_types`` form of each frame."""
    out = []
    for frame in frames:
        if isinstance(frame, bytes):
            out.append(f"<binary ev={struct.unpack('>I', frame[:4])[0]}>")
            continue
        event, data = frame["type"], frame.get("data") or {}
        if event == "status":
            out.append(f"status(q={data['status']['exec_info']['queue_remaining']})")
        elif event in ("executing", "executed"):
            out.append(f"{event}({data['node']})")
        elif event == "progress_state":
            nodes = ",".join(f"{k}:{v['state']}" for k, v in data["nodes"].items())
            out.append(f"progress_state{{{nodes}}}")
        elif event == "progress":
            out.append(f"progress({data['node']}:{data['value']}/{data['max']})")
        else:
            out.append(event)
    return out
