"""Benchmarks, run as modules (``python -m tests.bench.<name>``); pytest does not collect them."""
