"""``handlers.worker``'s public surface is pinned: adding or removing a name is a deliberate change to this list."""

from __future__ import annotations

from handlers import worker as package

EXPECTED = [
    "AssetError",
    "AssetSettings",
    "Assets",
    "ComfyProcess",
    "ComfyUIDied",
    "CoreEvent",
    "Finished",
    "MediaFetcher",
    "MediaLimits",
    "MemoryOutputStore",
    "OutputStore",
    "ProgressThrottle",
    "S3OutputStore",
    "UploadSettings",
    "WebhookOutbox",
    "WorkerConfig",
    "WorkerRuntime",
    "configure_logging",
    "error_for",
    "fit_payload",
    "handler",
    "make_handler",
    "make_stream_handler",
    "progress_event",
    "set_runtime",
    "stream_handler",
]


def test_all_is_pinned() -> None:
    assert package.__all__ == EXPECTED


def test_every_exported_name_exists_and_is_defined_in_the_package() -> None:
    for name in package.__all__:
        member = getattr(package, name)
        module = getattr(member, "__module__", None)
        if module is not None and isinstance(member, type):
            assert module.startswith("handlers.worker."), (name, module)
