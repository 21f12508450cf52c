"""``comfy-relay emulate runpod``: placeholder, filled in by the emulator's change."""

from __future__ import annotations

import argparse
from typing import Any


def register(services: Any) -> None:
    parser: argparse.ArgumentParser = services.add_parser("runpod", help="emulate runpod")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.set_defaults(run=lambda args: 2)
