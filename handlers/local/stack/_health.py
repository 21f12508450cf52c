"""Is each part of the stack up? Ports checked before start, HTTP health polled after, with messages a person can act
on (which component, which port, what its log said)."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable, Mapping

import httpx

from handlers.local.stack._supervisor import Child

__all__ = ["StackError", "check_port_free", "wait_healthy"]

_POLL_INTERVAL_S = 0.05


class StackError(RuntimeError):
    """A part of the stack could not start or stopped answering. The message says which and why."""


def check_port_free(host: str, port: int, label: str) -> None:
    """Raise StackError naming the component when ``port`` is taken (checked by binding it, as the child would)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StackError(
                    f"port {port} on {host} ({label}) is already in use: stop what holds it "
                    f"(`ss -ltnp 'sport = :{port}'` shows it), or move the stack with --port-base"
                ) from None
            raise StackError(f"cannot bind {host}:{port} ({label}): {exc.strerror or exc}") from None


def _answers(url: str, headers: Mapping[str, str], accept: Callable[[httpx.Response], bool]) -> bool:
    try:
        response = httpx.get(url, headers=dict(headers), timeout=2.0, trust_env=False)
    except httpx.HTTPError:
        return False
    return accept(response)


def wait_healthy(
    label: str,
    url: str,
    deadline: float,
    *,
    child: Child | None = None,
    headers: Mapping[str, str] | None = None,
    accept: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200,
) -> None:
    """Poll ``url`` until it answers as ``accept`` wants; fail early (with the child's log) if the child exits.

    ``deadline`` is a ``time.monotonic()`` instant.
    """
    while True:
        if child is not None and child.poll() is not None:
            raise StackError(
                f"{label} exited with status {child.process.returncode} while starting; "
                f"its log ({child.log_path}) ends with:\n{child.log_tail()}"
            )
        if _answers(url, headers or {}, accept):
            return
        if time.monotonic() >= deadline:
            tail = f"; its log ({child.log_path}) ends with:\n{child.log_tail()}" if child is not None else ""
            raise StackError(f"{label} did not answer at {url} in time{tail}")
        time.sleep(_POLL_INTERVAL_S)
