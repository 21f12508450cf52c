"""Cold-start helpers: the process age from the kernel, and the runpod import without py-cpuinfo's probe."""

from __future__ import annotations

import importlib

from handlers.worker._startup import process_age_ms, without_cpu_probe


def test_process_age_is_measured_from_the_kernel() -> None:
    age = process_age_ms()
    assert age is not None and age > 0


def test_the_cpu_probe_is_replaced_only_during_the_import() -> None:
    cpuinfo = importlib.import_module("cpuinfo")
    original = cpuinfo.get_cpu_info
    with without_cpu_probe():
        info = cpuinfo.get_cpu_info()
        assert cpuinfo.get_cpu_info is not original
        assert isinstance(info["brand_raw"], str) and info["brand_raw"]
    assert cpuinfo.get_cpu_info is original
