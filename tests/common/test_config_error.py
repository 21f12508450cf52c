"""Worker and dispatch report a bad environment with the same error and the same message shape."""

from __future__ import annotations

import pytest

from handlers.common import ConfigError
from handlers.dispatch._config import load_settings
from handlers.worker import WorkerConfig


def test_both_halves_raise_the_one_config_error_listing_every_problem() -> None:
    with pytest.raises(ConfigError) as worker:
        WorkerConfig.from_env({"RELAY_PROGRESS_INTERVAL_MS": "soon", "RELAY_UPLOAD_CONCURRENCY": "-1"})
    with pytest.raises(ConfigError) as dispatch:
        load_settings({})
    for info, component in ((worker, "worker"), (dispatch, "dispatch")):
        error = info.value
        assert error.component == component
        assert len(error.problems) >= 2
        assert str(error).startswith(f"invalid {component} configuration ({len(error.problems)} problem(s)):")
        assert all(f"\n  - {p}" in str(error) for p in error.problems)
