"""The RunPod worker that runs beside ComfyUI: ComfyUI client, input staging, output collection, upload, progress.

``python -m handlers.worker`` starts the RunPod SDK with :func:`handler` (or :func:`stream_handler` when
``RELAY_STREAM`` is set). Importing this package does not import ``runpod``. The ComfyUI client is the
:mod:`handlers.worker.comfy` subpackage, with its own surface.
"""

from handlers.worker._assets import AssetError, Assets, AssetSettings
from handlers.worker._config import WorkerConfig
from handlers.worker._core import WorkerRuntime
from handlers.worker._events import CoreEvent, Finished, ProgressThrottle, error_for, fit_payload, progress_event
from handlers.worker._handler import handler, make_handler, make_stream_handler, set_runtime, stream_handler
from handlers.worker._logging import configure_logging
from handlers.worker._progress_sink import WebhookOutbox
from handlers.worker._staging import MediaFetcher, MediaLimits
from handlers.worker._storage import MemoryOutputStore, OutputStore, S3OutputStore, UploadSettings
from handlers.worker._supervisor import ComfyProcess, ComfyUIDied

__all__ = [
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
