"""Cold-start figures: how long this process has existed, read from the kernel (``/proc/self/stat``), so the
figure includes the interpreter's start and every import before any of our code ran."""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["process_age_ms"]


def process_age_ms() -> int | None:
    """Milliseconds since this process started; ``None`` where ``/proc`` is not available."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks since boot
        since_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
        return round((since_boot - start_ticks / os.sysconf("SC_CLK_TCK")) * 1000)
    except (OSError, ValueError, IndexError, AttributeError):
        return None
