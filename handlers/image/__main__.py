"""``python -m handlers.image models|nodes ...``: the image tools inside an image build, where comfy-relay itself is
not installed yet (only pydantic and httpx are)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from handlers.image._cli import register_models, register_nodes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handlers.image", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_models(commands)
    register_nodes(commands)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
