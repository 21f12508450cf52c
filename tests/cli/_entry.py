"""``python -m tests.cli._entry ARGS``: the ``comfy-relay`` command with the local-stack commands registered, whether
or not ``handlers.cli`` wires them yet (then this is exactly ``comfy-relay ARGS``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from handlers.cli import build_parser
from handlers.cli import main as cli_main


def main(argv: Sequence[str] | None = None) -> int:
    from handlers.cli import _demo, _jobs, _local, _run

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    modules = {"local": _local, "demo": _demo, "run": _run, "enqueue": _jobs}
    if all(name in commands.choices for name in modules):
        return cli_main(argv)
    for name, module in modules.items():
        if name not in commands.choices:
            module.register(commands)
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
