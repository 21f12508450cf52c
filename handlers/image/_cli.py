"""Command-line surface of the image tools: ``models fetch|link``, ``nodes install`` and ``image lock|build|smoke``.

``comfy-relay`` registers ``models`` and ``image``; ``python -m handlers.image`` serves ``models`` and ``nodes``
inside an image build, where only pydantic and httpx are installed. Registration imports nothing heavy.
Exit codes: 0 done, 1 a failure (each explained on stderr), 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any, Final

__all__ = ["LOCK_ENV", "default_lock_path", "register_image", "register_models", "register_nodes"]

#: Environment variable naming the lock file (the image sets it; else the repository's worker_image/lock.json).
LOCK_ENV: Final = "RELAY_LOCK_FILE"
_REPO: Final = Path(__file__).resolve().parents[2]


def default_lock_path() -> Path:
    configured = os.environ.get(LOCK_ENV, "").strip()
    return Path(configured) if configured else _REPO / "worker_image" / "lock.json"


def _fail(command: str, message: str) -> int:
    print(f"comfy-relay {command}: {message}", file=sys.stderr)
    return 1


# ------------------------------------------------------------------------------------------------------ models


def register_models(commands: Any) -> None:
    models = commands.add_parser("models", help="fetch the model files of an image profile (sha256-verified)")
    sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    fetch = sub.add_parser(
        "fetch",
        help="download a profile's models into a models folder",
        description="Download every model file of a profile into DEST/<folder>/<file>: in parallel, resuming "
        "interrupted transfers, sha256-verified before a file is moved into place, skipping files already present "
        "and matching. Tokens: the lock's token_env, else HF_TOKEN for Hugging Face URLs; never logged. Exit 1 "
        "when any file failed.",
    )
    fetch.add_argument("--profile", required=True, help="a profile of the lock (e.g. sdxl, flux, all, test)")
    fetch.add_argument("--dest", required=True, type=Path, help="a ComfyUI models folder (e.g. /runpod-volume/models)")
    fetch.add_argument("--lock", type=Path, default=None, help=f"the lock file (default: ${LOCK_ENV} or the repo's)")
    fetch.add_argument("--concurrency", type=int, default=4, help="files downloaded at once (default 4)")
    fetch.add_argument("--attempts", type=int, default=4, help="attempts per file before giving up (default 4)")
    fetch.add_argument(
        "--allow-unverified", action="store_true", help="also fetch files whose lock entry has no sha256"
    )
    fetch.add_argument("--generated-only", action="store_true", help="only make the locally generated models")
    fetch.add_argument("--no-progress", action="store_true", help="plain progress lines even on a terminal")
    fetch.set_defaults(run=_run_fetch)
    link = sub.add_parser(
        "link",
        help="link models from a network volume into the image's models folder",
        description="Symlink every file and folder of SOURCE that DEST lacks (recursively), for custom nodes that "
        "read their models folder directly instead of ComfyUI's extra model paths.",
    )
    link.add_argument("--source", required=True, type=Path)
    link.add_argument("--dest", required=True, type=Path)
    link.set_defaults(run=_run_link)


def _run_fetch(args: argparse.Namespace) -> int:
    from handlers.image._fetch import FetchOptions, FetchStatus, fetch_models  # noqa: PLC0415
    from handlers.image._lock import LockError, load_lock  # noqa: PLC0415
    from handlers.image._progress import LineProgress, summary, terminal_progress  # noqa: PLC0415

    if args.concurrency < 1 or args.attempts < 1:
        return _fail("models fetch", "--concurrency and --attempts must be at least 1")
    try:
        lock = load_lock(args.lock or default_lock_path())
        models = lock.models_of(args.profile)
    except LockError as exc:
        return _fail("models fetch", str(exc))
    options = FetchOptions(
        concurrency=args.concurrency,
        attempts=args.attempts,
        allow_unverified=args.allow_unverified,
        generated_only=args.generated_only,
    )
    rich = None if args.no_progress else terminal_progress(len(models))
    if rich is not None:
        display, reporter = rich
        with display:  # type: ignore[attr-defined]
            results = asyncio.run(fetch_models(models, args.dest, options=options, progress=reporter))
    else:
        results = asyncio.run(
            fetch_models(models, args.dest, options=options, progress=LineProgress(count=len(models)))
        )
    print(summary(results), file=sys.stderr)
    return 1 if any(r.status is FetchStatus.FAILED for r in results) else 0


def link_missing(source: Path, dest: Path) -> list[Path]:
    """Symlink what ``source`` has and ``dest`` lacks; descend where both have a real folder. Returns the links."""
    made: list[Path] = []
    dest.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()):
        target = dest / entry.name
        if not target.exists() and not target.is_symlink():
            target.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
            made.append(target)
        elif entry.is_dir() and target.is_dir() and not target.is_symlink():
            made += link_missing(entry, target)
    return made


def _run_link(args: argparse.Namespace) -> int:
    if not args.source.is_dir():
        return _fail("models link", f"{args.source} is not a folder")
    made = link_missing(args.source, args.dest)
    print(f"linked {len(made)} entries from {args.source} into {args.dest}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------------- nodes


def register_nodes(commands: Any) -> None:
    nodes = commands.add_parser("nodes", help="install the custom node packs of an image profile")
    sub = nodes.add_subparsers(dest="nodes_command", required=True, metavar="ACTION")
    install = sub.add_parser("install", help="clone each pack at its locked commit and install its requirements")
    install.add_argument("--profile", required=True)
    install.add_argument("--dest", required=True, type=Path, help="ComfyUI's custom_nodes folder")
    install.add_argument("--lock", type=Path, default=None)
    install.add_argument("--constraint", type=Path, default=None, help="a pip constraints file (keeps torch)")
    install.set_defaults(run=_run_nodes)


def _run_nodes(args: argparse.Namespace) -> int:
    import logging  # noqa: PLC0415

    from handlers.image._lock import LockError, load_lock  # noqa: PLC0415
    from handlers.image._nodes import NodeInstallError, install_nodes  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        lock = load_lock(args.lock or default_lock_path())
        nodes = lock.nodes_of(args.profile)
        done = install_nodes(nodes, args.dest, constraint=args.constraint)
    except (LockError, NodeInstallError) as exc:
        return _fail("nodes install", str(exc))
    print(f"custom nodes installed: {', '.join(done) or 'none needed'}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------------- image


def register_image(commands: Any) -> None:
    image = commands.add_parser("image", help="the worker image: lock, offline build, smoke test")
    sub = image.add_subparsers(dest="image_command", required=True, metavar="ACTION")
    lock = sub.add_parser(
        "lock",
        help="regenerate worker_image/lock.json and extra_model_paths.yaml from the templates",
        description="Write the lock (ComfyUI's commit, every custom node and model file the templates name, the "
        "profiles) and extra_model_paths.yaml. --check: write nothing, exit 1 when either is stale.",
    )
    lock.add_argument("--check", action="store_true", help="exit 1 when the checked-in files are stale")
    lock.add_argument("--root", type=Path, default=None, help="the workflow library (default: the installed one)")
    lock.add_argument("--dir", type=Path, default=_REPO / "worker_image", help="where pins.json and the lock are")
    lock.set_defaults(run=_run_lock)
    build = sub.add_parser(
        "build",
        help="build the worker image with buildah (no Docker daemon)",
        description="Build worker_image/Dockerfile with buildah --isolation chroot. --offline: no Docker Hub and "
        "no GitHub: the base is local (made with debootstrap unless --base-image names one) and ComfyUI comes from "
        "--comfyui-src; Python packages still come from PyPI (or --wheels).",
    )
    build.add_argument("--offline", action="store_true", help="local base and local ComfyUI source (required)")
    build.add_argument("--comfyui-src", type=Path, required=True, help="ComfyUI's source at the pinned commit")
    build.add_argument("--base-image", default=None, help="a local base image (default: make or reuse a Debian one)")
    build.add_argument("--profile", default="test", help="the lock profile to bake (default: test)")
    build.add_argument("--tag", default="localhost/comfy-relay-worker:test", help="the image tag")
    build.add_argument(
        "--torch-packages",
        default="torch==2.14.1 torchvision==0.29.1",
        help="pip requirements for torch (default: a torch/torchvision pair; runs on the CPU with --cpu)",
    )
    build.add_argument("--wheels", type=Path, default=None, help="a folder of wheels pip may use (find-links)")
    build.add_argument(
        "--ca-bundle", type=Path, default=Path("/etc/ssl/certs/ca-certificates.crt"), help="CA bundle pip trusts"
    )
    build.add_argument("--bake-models", action="store_true", help="bake the profile's downloadable models too")
    build.set_defaults(run=_run_build)
    smoke = sub.add_parser(
        "smoke",
        help="run a built image on the CPU against the RunPod emulator and moto, one job through /run",
        description="Start moto and the RunPod emulator on loopback, run TAG with buildah (its worker connects to "
        "them, ComfyUI with --cpu), submit one job through /run and check: outputs in S3, manifest written, progress "
        "seen. Prints the time from container start to the worker taking the job.",
    )
    smoke.add_argument("tag")
    smoke.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole run (default 900)")
    smoke.set_defaults(run=_run_smoke)


def _run_lock(args: argparse.Namespace) -> int:
    from handlers.image._generate import lock_outputs  # noqa: PLC0415
    from handlers.image._lock import LockError  # noqa: PLC0415
    from handlers.workflow import LibraryMissingError, TemplateError, require_library  # noqa: PLC0415

    try:
        root = require_library(root=args.root)
        outputs = lock_outputs(root, args.dir / "pins.json")
    except (LockError, LibraryMissingError, TemplateError) as exc:
        return _fail("image lock", str(exc))
    stale = [name for name, text in outputs.items() if _read(args.dir / name) != text]
    if args.check:
        if stale:
            return _fail("image lock", f"stale: {', '.join(stale)}; run `comfy-relay image lock` and commit")
        print("comfy-relay image lock: up to date", file=sys.stderr)
        return 0
    for name in stale:
        (args.dir / name).write_text(outputs[name], encoding="utf-8")
    print(f"comfy-relay image lock: wrote {', '.join(stale) or 'nothing (up to date)'}", file=sys.stderr)
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _run_build(args: argparse.Namespace) -> int:
    from handlers.image._build import BuildError, BuildOptions, build_image  # noqa: PLC0415

    if not args.offline:
        return _fail("image build", "only --offline builds run here; use `docker build` elsewhere (see worker_image/)")
    options = BuildOptions(
        comfyui_src=args.comfyui_src,
        base_image=args.base_image,
        profile=args.profile,
        tag=args.tag,
        torch_packages=args.torch_packages,
        wheels=args.wheels,
        ca_bundle=args.ca_bundle,
        bake_models=args.bake_models,
    )
    try:
        build_image(options)
    except BuildError as exc:
        return _fail("image build", str(exc))
    return 0


def _run_smoke(args: argparse.Namespace) -> int:
    from handlers.image._smoke import SmokeError, smoke  # noqa: PLC0415

    try:
        report = smoke(args.tag, timeout_s=args.timeout)
    except SmokeError as exc:
        return _fail("image smoke", str(exc))
    for key, value in report.items():
        print(f"{key}: {value}")
    return 0
