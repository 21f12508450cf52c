"""The aiohttp application: ComfyUI's routes (also under ``/api``), the WebSocket, the prompt worker, admin routes."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import functools
import ipaddress
import json
import logging
import shutil
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from ._config import EmulatorConfig
from ._executor import Executor
from ._faults import FaultError
from ._files import Refused, annotated_name, apply_mask, directory_for, pick_upload_path, render_view, within
from ._hub import Hub
from ._messages import json_frame, queue_info
from ._node import Folders, Node
from ._queue import PromptQueue
from ._validation import PromptCrash, no_prompt_error, validate_prompt

__all__ = ["EMULATOR", "Emulator", "create_app"]

log = logging.getLogger(__name__)

COMFYUI_VERSION = "0.3.64"
#: The model folder keys ComfyUI 0.3.64 reports from ``GET /models``, in its order, with the packs' own after them.
MODEL_FOLDERS = (
    "checkpoints",
    "configs",
    "loras",
    "vae",
    "text_encoders",
    "diffusion_models",
    "clip_vision",
    "style_models",
    "embeddings",
    "diffusers",
    "vae_approx",
    "controlnet",
    "gligen",
    "upscale_models",
    "custom_nodes",
    "hypernetworks",
    "photomaker",
    "classifiers",
    "model_patches",
    "audio_encoders",
    # Registered by the custom node packs the emulator implements, as they load: ComfyUI_IPAdapter_plus, PuLID_ComfyUI.
    "ipadapter",
    "pulid",
)
#: Keys the real server takes out of ``extra_data`` before it queues a prompt.
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")
_SERVER_ERROR = "500 Internal Server Error\n\nServer got itself in trouble"
_TERMINAL_SIZE = {"cols": 80, "rows": 24}
_MAX_LOG_ENTRIES = 300

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _server_error() -> web.Response:
    # What aiohttp answers when a handler raises: the real server's answer to bodies it cannot digest.
    return web.Response(status=500, text=_SERVER_ERROR)


def _default_node_classes() -> Mapping[str, type[Node]]:
    from ._nodes import NODE_CLASSES  # noqa: PLC0415  (the node registry is heavy: imported when a server starts)

    return NODE_CLASSES


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@web.middleware
async def _origin_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse cross-origin requests to a loopback server, as ComfyUI's origin-only middleware does."""
    host_header = request.headers.get("Host")
    origin_header = request.headers.get("Origin")
    if host_header and origin_header:
        host = host_header.lower()
        origin = urllib.parse.urlparse(origin_header)
        host_parts = urllib.parse.urlsplit("//" + host)
        origin_domain: str | None = origin.netloc.lower()
        host_domain: str | None = host
        if origin.port is None:
            host_domain = host_parts.hostname
        if host_parts.port is None:
            origin_domain = origin.hostname
        if _is_loopback(host_parts.hostname) and host_domain and origin_domain and host_domain != origin_domain:
            log.warning("refused a request from origin %s to host %s", origin_header, host_header)
            return web.Response(status=403)
    if request.method == "OPTIONS":
        return web.Response()
    return await handler(request)


class Emulator:
    """Everything one emulated ComfyUI holds: folders, queue, executor, sockets, logs, faults."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.faults = config.faults
        self._owned_dir: Path | None = None
        self.folders: Folders | None = None
        self.node_classes: Mapping[str, type[Node]] = {}
        self.hub = Hub(config.faults)
        self.queue = PromptQueue(self._queue_changed, config.max_history)
        self.executor: Executor | None = None
        self.number = 0
        self.log_entries: list[dict[str, str]] = []
        self.log_subscribers: dict[str, bool] = {}
        self.finished_at: dict[str, float] = {}
        self.history_calls: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # lifecycle
    async def start(self, app: web.Application) -> None:
        config = self.config
        data_dir = config.data_dir
        if data_dir is None:
            data_dir = self._owned_dir = Path(tempfile.mkdtemp(prefix="comfyui-emulator-"))
        models = config.models_dir if config.models_dir is not None else data_dir / "models"
        self.folders = Folders(
            input=data_dir / "input", output=data_dir / "output", temp=data_dir / "temp", models=models
        )
        for path in (self.folders.input, self.folders.output, self.folders.temp, models):
            path.mkdir(parents=True, exist_ok=True)
        self.node_classes = config.node_classes if config.node_classes is not None else _default_node_classes()
        self.executor = Executor(self.node_classes, self.folders, self.hub, self.faults, config.step_delay)
        self._tasks = [asyncio.ensure_future(self.hub.run()), asyncio.ensure_future(self._worker())]

    async def shutdown(self, app: web.Application) -> None:
        await self.hub.close_all()

    async def cleanup(self, app: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)

    @property
    def ready_folders(self) -> Folders:
        assert self.folders is not None, "emulator not started"
        return self.folders

    @property
    def ready_executor(self) -> Executor:
        assert self.executor is not None, "emulator not started"
        return self.executor

    # status and logs
    def _queue_changed(self, remaining: int) -> None:
        self.hub.send("status", {"status": queue_info(remaining)}, None)

    def log(self, message: str) -> None:
        entry = {"t": datetime.datetime.now().isoformat(), "m": message + "\n"}
        self.log_entries.append(entry)
        del self.log_entries[:-_MAX_LOG_ENTRIES]
        for sid, first in list(self.log_subscribers.items()):
            self.hub.send("logs", {"entries": [entry], "size": _TERMINAL_SIZE if first else None}, sid)
            self.log_subscribers[sid] = False

    # the prompt worker
    async def _worker(self) -> None:
        while True:
            task_id, item = await self.queue.get()
            started = time.monotonic()
            executor = self.ready_executor
            try:
                entry = (await executor.execute(item)).history_entry()
            except Exception:
                log.exception("the emulator failed to run prompt %s", item.prompt_id)
                entry = {
                    "outputs": {},
                    "status": {"status_str": "error", "completed": False, "messages": []},
                    "meta": {},
                }
            self.queue.task_done(task_id, entry)
            self.finished_at[item.prompt_id] = time.monotonic()
            if item.client_id is not None:
                self.hub.send("executing", {"node": None, "prompt_id": item.prompt_id}, item.client_id)
            self.log(f"Prompt executed in {time.monotonic() - started:.2f} seconds")
            if self.queue.take_flags().get("free_memory"):
                executor.reset()

    def history_visible(self, prompt_id: str, count_call: bool) -> bool:
        """False while the history-delay faults hide a finished prompt."""
        if prompt_id not in self.queue.history:
            return True
        faults = self.faults
        finished = self.finished_at.get(prompt_id)
        if (
            faults.history_delay_seconds > 0
            and finished is not None
            and time.monotonic() - finished < faults.history_delay_seconds
        ):
            return False
        if count_call and faults.history_delay_calls > 0:
            calls = self.history_calls[prompt_id] = self.history_calls.get(prompt_id, 0) + 1
            if calls <= faults.history_delay_calls:
                return False
        return True

    def reset(self) -> None:
        """The admin reset: no faults, no queue or history, an empty cache; a held or running prompt is interrupted."""
        self.faults.clear()
        self.queue.clear_all()
        self.finished_at.clear()
        self.history_calls.clear()
        executor = self.ready_executor
        executor.reset()
        if executor.running is not None:
            executor.interrupt()
        executor.release()

    def object_info(self) -> dict[str, Any]:
        return {name: cls.catalogue_entry(self.ready_folders) for name, cls in self.node_classes.items()}

    def server_features(self) -> dict[str, Any]:
        return {"supports_preview_metadata": True, "max_upload_size": self.config.max_upload_size}


EMULATOR = web.AppKey("comfyui_emulator", Emulator)


def _emulator(request: web.Request) -> Emulator:
    return request.app[EMULATOR]


async def _json_body(request: web.Request) -> Any:
    return json.loads(await request.text())


JsonHandler = Callable[[web.Request, Any], Awaitable[web.Response]]


def _with_json_body(handler: JsonHandler) -> Handler:
    """Hand ``handler`` the parsed body; a body that is not JSON gets the real server's bare 500."""

    @functools.wraps(handler)
    async def parsed(request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
        except ValueError:
            return _server_error()
        return await handler(request, body)

    return parsed


# --- /prompt, /queue, /interrupt, /free ----------------------------------------------------------------------------


async def post_prompt(request: web.Request) -> web.Response:
    emu = _emulator(request)
    emu.log("got prompt")
    try:
        body = await _json_body(request)
    except ValueError:
        return _server_error()
    if not isinstance(body, dict | list | str):
        return _server_error()
    if isinstance(body, dict) and "number" in body:
        try:
            number: float = float(body["number"])
        except (TypeError, ValueError):
            return _server_error()
    else:
        number = emu.number
        if isinstance(body, dict) and body.get("front"):
            number = -number
        emu.number += 1
    if not isinstance(body, dict) or "prompt" not in body:
        return web.json_response({"error": no_prompt_error(), "node_errors": {}}, status=400)
    prompt = copy.deepcopy(body["prompt"])
    prompt_id = str(body["prompt_id"]) if "prompt_id" in body else str(uuid.uuid4())
    try:
        result = validate_prompt(prompt, emu.node_classes, emu.ready_folders, body.get("partial_execution_targets"))
    except PromptCrash:
        return _server_error()
    extra_data = copy.deepcopy(body.get("extra_data", {}))
    if not isinstance(extra_data, dict):
        return _server_error()
    if "client_id" in body:
        extra_data["client_id"] = body["client_id"]
    if not result.ok:
        return web.json_response({"error": result.error, "node_errors": result.node_errors}, status=400)
    for key in SENSITIVE_EXTRA_DATA_KEYS:
        extra_data.pop(key, None)
    emu.queue.put(emu.queue.new_item(number, prompt_id, prompt, extra_data, result.outputs))
    return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": result.node_errors})


async def get_prompt(request: web.Request) -> web.Response:
    return web.json_response(queue_info(_emulator(request).queue.remaining()))


async def get_queue(request: web.Request) -> web.Response:
    queue = _emulator(request).queue
    return web.json_response(
        {
            "queue_running": [item.as_list() for item in queue.running()],
            "queue_pending": [item.as_list() for item in queue.pending()],
        }
    )


@_with_json_body
async def post_queue(request: web.Request, body: Any) -> web.Response:
    queue = _emulator(request).queue
    if isinstance(body, dict):
        if body.get("clear"):
            queue.wipe()
        for prompt_id in body.get("delete") or []:
            queue.delete(prompt_id)
    return web.Response(status=200)


async def post_interrupt(request: web.Request) -> web.Response:
    emu = _emulator(request)
    executor = emu.ready_executor
    try:
        body = await _json_body(request)
    except ValueError:
        body = {}
    prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
    if prompt_id:
        if any(item.prompt_id == prompt_id for item in emu.queue.running()):
            executor.interrupt()
        else:
            log.info("Prompt %s is not currently running, skipping interrupt", prompt_id)
    else:
        executor.interrupt()
    return web.Response(status=200)


@_with_json_body
async def post_free(request: web.Request, body: Any) -> web.Response:
    emu = _emulator(request)
    if isinstance(body, dict):
        if body.get("unload_models"):
            emu.queue.set_flag("unload_models", True)
        if body.get("free_memory"):
            if emu.queue.running():
                emu.queue.set_flag("free_memory", True)
            else:
                emu.ready_executor.reset()
    return web.Response(status=200)


# --- /history -------------------------------------------------------------------------------------------------------


async def get_history(request: web.Request) -> web.Response:
    emu = _emulator(request)
    query = request.rel_url.query
    try:
        max_items = int(query["max_items"]) if "max_items" in query else None
        offset = int(query["offset"]) if "offset" in query else -1
    except ValueError:
        return _server_error()
    history = emu.queue.get_history(max_items=max_items, offset=offset)
    return web.json_response({k: v for k, v in history.items() if emu.history_visible(k, count_call=False)})


async def get_history_item(request: web.Request) -> web.Response:
    emu = _emulator(request)
    prompt_id = request.match_info["prompt_id"]
    entry = emu.queue.history.get(prompt_id)
    if entry is None or not emu.history_visible(prompt_id, count_call=True):
        return web.json_response({})
    return web.json_response({prompt_id: copy.deepcopy(entry)})


@_with_json_body
async def post_history(request: web.Request, body: Any) -> web.Response:
    emu = _emulator(request)
    if isinstance(body, dict):
        if body.get("clear"):
            emu.queue.history.clear()
        for prompt_id in body.get("delete") or []:
            emu.queue.history.pop(prompt_id, None)
    return web.Response(status=200)


# --- files ----------------------------------------------------------------------------------------------------------


async def get_view(request: web.Request) -> web.StreamResponse:
    emu = _emulator(request)
    try:
        # A channel or preview request decodes and re-encodes the image: off the event loop.
        view = await asyncio.to_thread(render_view, emu.ready_folders, dict(request.rel_url.query))
    except Refused as refused:
        return web.Response(status=refused.status)
    headers = {"Content-Disposition": f'filename="{view.filename}"'}
    if view.path is not None:
        return web.FileResponse(view.path, headers={**headers, "Content-Type": view.content_type})
    return web.Response(body=view.body, content_type=view.content_type, headers=headers)


async def _upload(request: web.Request, mask: bool) -> web.Response:
    emu = _emulator(request)
    folders = emu.ready_folders
    try:
        post = await request.post()
    except ValueError:
        return web.Response(status=400)
    image = post.get("image")
    if not isinstance(image, web.FileField) or not image.filename:
        return web.Response(status=400)
    kind = post.get("type")
    kind_name = kind if isinstance(kind, str) and kind else "input"
    directory = directory_for(folders, kind_name)
    if directory is None:
        return web.Response(status=400)
    subfolder = post.get("subfolder", "")
    subfolder = subfolder if isinstance(subfolder, str) else ""
    overwrite = post.get("overwrite") in ("true", "1")
    # Up to max_upload_size bytes read, compared, written (and composited for a mask): off the event loop.
    saved = await asyncio.to_thread(
        _save_upload,
        folders,
        directory,
        image,
        subfolder=subfolder,
        overwrite=overwrite,
        mask=mask,
        original_ref=post.get("original_ref"),
    )
    if isinstance(saved, int):
        return web.Response(status=saved)
    return web.json_response({"name": saved.name, "subfolder": subfolder, "type": kind_name})


def _save_upload(
    folders: Folders,
    directory: Path,
    image: web.FileField,
    *,
    subfolder: str,
    overwrite: bool,
    mask: bool,
    original_ref: Any,
) -> Path | int:
    """Write an upload where ComfyUI would; the path written, or the HTTP status of a refusal."""
    data = image.file.read()
    try:
        path, duplicate = pick_upload_path(directory, subfolder, image.filename, data, overwrite)
    except Refused as refused:
        return refused.status
    path.parent.mkdir(parents=True, exist_ok=True)
    if duplicate:
        return path
    if not mask:
        path.write_bytes(data)
        return path
    refused_status = _save_mask(folders, original_ref, data, path)
    return path if refused_status is None else refused_status


def _save_mask(folders: Folders, original_ref: Any, data: bytes, target: Path) -> int | None:
    try:
        ref = json.loads(original_ref) if isinstance(original_ref, str) else None
    except ValueError:
        ref = None
    if not isinstance(ref, dict) or not isinstance(ref.get("filename"), str):
        return 400
    filename, directory = annotated_name(ref["filename"], folders)
    if not filename or filename[0] == "/" or ".." in filename:
        return 400
    if directory is None:
        directory = directory_for(folders, ref.get("type", "output"))
    if directory is None:
        return 400
    subfolder = ref.get("subfolder", "")
    if subfolder:
        full = directory / str(subfolder)
        if not within(directory, full):
            return 403
        directory = full
    original = directory / filename
    if original.is_file():
        try:
            apply_mask(original, data, target)
        except OSError:
            return 400
    return None


async def post_upload_image(request: web.Request) -> web.Response:
    return await _upload(request, mask=False)


async def post_upload_mask(request: web.Request) -> web.Response:
    return await _upload(request, mask=True)


# --- catalogue and system -------------------------------------------------------------------------------------------


async def get_object_info(request: web.Request) -> web.Response:
    return web.json_response(_emulator(request).object_info())


async def get_object_info_node(request: web.Request) -> web.Response:
    emu = _emulator(request)
    name = request.match_info["node_class"]
    cls = emu.node_classes.get(name)
    return web.json_response({} if cls is None else {name: cls.catalogue_entry(emu.ready_folders)})


async def get_models(request: web.Request) -> web.Response:
    return web.json_response(list(MODEL_FOLDERS))


async def get_models_folder(request: web.Request) -> web.Response:
    folder = request.match_info["folder"]
    if folder not in MODEL_FOLDERS:
        return web.Response(status=404)
    return web.json_response(_emulator(request).ready_folders.model_files(folder))


async def get_embeddings(request: web.Request) -> web.Response:
    files = _emulator(request).ready_folders.model_files("embeddings")
    return web.json_response([Path(f).stem for f in files])


async def get_extensions(request: web.Request) -> web.Response:
    return web.json_response([])


async def get_features(request: web.Request) -> web.Response:
    return web.json_response(_emulator(request).server_features())


async def get_system_stats(request: web.Request) -> web.Response:
    ram = 8 * 1024**3
    return web.json_response(
        {
            "system": {
                "os": "posix" if sys.platform != "win32" else "nt",
                "ram_total": ram,
                "ram_free": ram,
                "comfyui_version": COMFYUI_VERSION,
                "required_frontend_version": "1.27.10",
                "installed_templates_version": "0.1.95",
                "required_templates_version": "0.1.95",
                "python_version": sys.version,
                "pytorch_version": "emulated",
                "embedded_python": False,
                "argv": ["main.py", "--cpu"],
            },
            "devices": [
                {
                    "name": "cpu",
                    "type": "cpu",
                    "index": None,
                    "vram_total": ram,
                    "vram_free": ram,
                    "torch_vram_total": ram,
                    "torch_vram_free": ram,
                }
            ],
        }
    )


# --- internal routes ------------------------------------------------------------------------------------------------


async def get_internal_logs(request: web.Request) -> web.Response:
    entries = _emulator(request).log_entries
    return web.json_response("".join(e["t"] + " - " + e["m"] for e in entries))


async def get_internal_logs_raw(request: web.Request) -> web.Response:
    return web.json_response({"entries": _emulator(request).log_entries, "size": _TERMINAL_SIZE})


@_with_json_body
async def patch_logs_subscribe(request: web.Request, body: Any) -> web.Response:
    emu = _emulator(request)
    if not isinstance(body, dict) or not isinstance(body.get("clientId"), str):
        return _server_error()
    if body.get("enabled"):
        emu.log_subscribers[body["clientId"]] = True
    else:
        emu.log_subscribers.pop(body["clientId"], None)
    return web.Response(status=200)


async def get_folder_paths(request: web.Request) -> web.Response:
    models = _emulator(request).ready_folders.models
    return web.json_response({folder: [str(models / folder)] for folder in MODEL_FOLDERS})


async def get_internal_files(request: web.Request) -> web.Response:
    directory = directory_for(_emulator(request).ready_folders, request.match_info["directory_type"])
    if directory is None:
        return web.json_response({"error": "Invalid directory type"}, status=400)
    files = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
    return web.json_response(files)


# --- WebSocket ------------------------------------------------------------------------------------------------------


async def websocket(request: web.Request) -> web.WebSocketResponse:
    emu = _emulator(request)
    ws = web.WebSocketResponse(max_msg_size=emu.config.max_upload_size)
    await ws.prepare(request)
    sid = request.rel_url.query.get("clientId", "") or uuid.uuid4().hex
    hub = emu.hub
    conn = hub.register(sid, ws)
    executor = emu.ready_executor
    try:
        await hub.send_now(conn, json_frame("status", {"status": queue_info(emu.queue.remaining()), "sid": sid}))
        if executor.client_id == sid and executor.last_node_id is not None:
            await hub.send_now(conn, json_frame("executing", {"node": executor.last_node_id}))
        first = True
        async for msg in ws:
            if msg.type != web.WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except ValueError:
                log.warning("invalid JSON from WebSocket client %s", sid)
                first = False
                continue
            if first and isinstance(data, dict) and data.get("type") == "feature_flags":
                flags = data.get("data")
                conn.flags = flags if isinstance(flags, dict) else {}
                await hub.send_now(conn, json_frame("feature_flags", emu.server_features()))
            first = False
    finally:
        hub.unregister(conn)
    return ws


# --- admin routes (not ComfyUI's) -----------------------------------------------------------------------------------


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(_emulator(request).faults.to_dict())


async def post_faults(request: web.Request) -> web.Response:
    emu = _emulator(request)
    try:
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise FaultError("the body must be a JSON object of fault settings")
        emu.faults.update(body)
    except (ValueError, FaultError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(emu.faults.to_dict())


async def delete_faults(request: web.Request) -> web.Response:
    emu = _emulator(request)
    emu.faults.clear()
    return web.json_response(emu.faults.to_dict())


async def post_reset(request: web.Request) -> web.Response:
    _emulator(request).reset()
    return web.json_response({"reset": True})


async def post_release(request: web.Request) -> web.Response:
    _emulator(request).ready_executor.release()
    return web.json_response({"released": True})


async def post_drop_websockets(request: web.Request) -> web.Response:
    emu = _emulator(request)
    count = len(emu.hub.sockets)
    emu.hub.drop_all()
    return web.json_response({"dropped": count})


async def not_found(request: web.Request) -> web.Response:
    # The real server's static route answers unknown GETs with an empty octet-stream 404 (and other methods 405).
    return web.Response(status=404, headers={"Content-Type": "application/octet-stream"})


_COMFY_ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/ws", websocket),
    ("GET", "/prompt", get_prompt),
    ("POST", "/prompt", post_prompt),
    ("GET", "/queue", get_queue),
    ("POST", "/queue", post_queue),
    ("POST", "/interrupt", post_interrupt),
    ("POST", "/free", post_free),
    ("GET", "/history", get_history),
    ("GET", "/history/{prompt_id}", get_history_item),
    ("POST", "/history", post_history),
    ("GET", "/view", get_view),
    ("POST", "/upload/image", post_upload_image),
    ("POST", "/upload/mask", post_upload_mask),
    ("GET", "/object_info", get_object_info),
    ("GET", "/object_info/{node_class}", get_object_info_node),
    ("GET", "/models", get_models),
    ("GET", "/models/{folder}", get_models_folder),
    ("GET", "/embeddings", get_embeddings),
    ("GET", "/extensions", get_extensions),
    ("GET", "/features", get_features),
    ("GET", "/system_stats", get_system_stats),
    ("GET", "/internal/logs", get_internal_logs),
    ("GET", "/internal/logs/raw", get_internal_logs_raw),
    ("PATCH", "/internal/logs/subscribe", patch_logs_subscribe),
    ("GET", "/internal/folder_paths", get_folder_paths),
    ("GET", "/internal/files/{directory_type}", get_internal_files),
)

_ADMIN_ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/_emulator/faults", get_faults),
    ("POST", "/_emulator/faults", post_faults),
    ("DELETE", "/_emulator/faults", delete_faults),
    ("POST", "/_emulator/reset", post_reset),
    ("POST", "/_emulator/release", post_release),
    ("POST", "/_emulator/websockets/drop", post_drop_websockets),
)


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    """The emulator as an aiohttp application; state and background tasks start with the app and stop with it."""
    config = config if config is not None else EmulatorConfig()
    app = web.Application(middlewares=[_origin_check], client_max_size=config.max_upload_size)
    emulator = Emulator(config)
    app[EMULATOR] = emulator
    for prefix in ("", "/api"):
        for method, path, handler in _COMFY_ROUTES:
            app.router.add_route(method, prefix + path, handler)
    for method, path, handler in _ADMIN_ROUTES:
        app.router.add_route(method, path, handler)
    app.router.add_route("GET", "/{tail:.*}", not_found)
    app.on_startup.append(emulator.start)
    app.on_shutdown.append(emulator.shutdown)
    app.on_cleanup.append(emulator.cleanup)
    return app
