"""Cold-start figures: how long this process has existed, read from the kernel (``/proc/self/stat``), so the
figure includes the interpreter's start and every import before any of our code ran."""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["process_age_ms", "without_cpu_probe"]


def process_age_ms() -> int | None:
    """Milliseconds since this process started; ``None`` where ``/proc`` is not available."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks since boot
        since_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
        return round((since_boot - start_ticks / os.sysconf("SC_CLK_TCK")) * 1000)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _processor_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


@contextlib.contextmanager
def without_cpu_probe() -> Iterator[None]:
    """Import the runpod SDK without its import-time CPU probe: ``runpod.serverless.utils.rp_debugger`` calls
    py-cpuinfo at import (~1.2 s, most of ``import runpod``) only to name the processor in its debugger output.
    During the import that call reads the name from ``/proc/cpuinfo`` instead; the original is restored after."""
    try:
        cpuinfo = importlib.import_module("cpuinfo")
    except ImportError:
        yield
        return
    original = getattr(cpuinfo, "get_cpu_info", None)
    if original is None:
        yield
        return
    setattr(cpuinfo, "get_cpu_info", lambda: {"brand_raw": _processor_name()})  # noqa: B010 (untyped module)
    try:
        yield
    finally:
        setattr(cpuinfo, "get_cpu_info", original)  # noqa: B010
