"""The one error for an environment that does not describe a usable process (worker or dispatch Lambda)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """Every problem with the environment at once, one per line; ``problems`` names each bad variable."""

    def __init__(self, problems: Sequence[str], *, component: str = "worker") -> None:
        self.problems = list(problems)
        self.component = component
        lines = "".join(f"\n  - {p}" for p in self.problems)
        super().__init__(f"invalid {component} configuration ({len(self.problems)} problem(s)):{lines}")
