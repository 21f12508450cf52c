"""QA and preview cost per output on this CPU: ``python -m tests.bench.bench_qa``. Figures, not a test."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from handlers.contract import OutputKind, PreviewOptions, QaThresholds
from handlers.local.comfyui._nodes._h264 import encode_h264
from handlers.local.comfyui._nodes._mp4 import mux_mp4
from handlers.local.comfyui._nodes._render import picture
from handlers.worker.qa import Expected, check_file, decoder_available, make_previews


def _ms(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        work()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main() -> None:
    th = QaThresholds()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for side in (512, 1024, 2048):
            path = root / f"{side}.png"
            picture(1, side, side).save(path)
            qa = _ms(lambda p=path, s=side: check_file(p, OutputKind.IMAGE, Expected(width=s, height=s), th), 5)
            thumb = _ms(lambda p=path: make_previews(p, OutputKind.IMAGE, PreviewOptions(), root), 5)
            print(f"image {side}x{side} png: QA {qa:.1f} ms, thumbnail {thumb:.1f} ms (median of 5)")
        if decoder_available():
            canvas = picture(2, 640, 640)
            frames = tuple(canvas.crop((x, x, x + 512, x + 512)) for x in range(0, 81))
            video = root / "v.mp4"
            video.write_bytes(mux_mp4(encode_h264(frames), fps=16))
            exp = Expected(width=512, height=512, frames=81, fps=16)
            qa = _ms(lambda: check_file(video, OutputKind.VIDEO, exp, th), 3)
            prev = _ms(lambda: make_previews(video, OutputKind.VIDEO, PreviewOptions(), root), 3)
            print(f"video 512x512x81 frames mp4: QA {qa:.1f} ms, poster + preview {prev:.1f} ms (median of 3)")
        else:
            print("video: PyAV not installed, checks skipped")


if __name__ == "__main__":
    main()
