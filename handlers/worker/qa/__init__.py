"""Automated QA of outputs (images, video, audio) and their previews: pure checks on files, numpy + Pillow on the
CPU (PyAV for video frames, soundfile for audio), and :class:`JobQaRun`, which runs them beside a job's uploads."""

from handlers.worker.qa._audio import check_audio, check_audio_file, read_audio
from handlers.worker.qa._checks import check_file
from handlers.worker.qa._expect import Expected, expected_for
from handlers.worker.qa._image import check_image, check_image_file, laplacian_variance, phash
from handlers.worker.qa._job import JobQaRun, attempt_verdict, qa_error
from handlers.worker.qa._policy import QaAttempts, QaFailed
from handlers.worker.qa._previews import Derived, make_previews, thumbnail, waveform
from handlers.worker.qa._reseed import reseeded
from handlers.worker.qa._verdicts import hamming, with_duplicates, worst
from handlers.worker.qa._video import VideoFrames, check_video, check_video_file, decoder_available, read_video

__all__ = [
    "Derived",
    "Expected",
    "JobQaRun",
    "QaAttempts",
    "QaFailed",
    "VideoFrames",
    "attempt_verdict",
    "check_audio",
    "check_audio_file",
    "check_file",
    "check_image",
    "check_image_file",
    "check_video",
    "check_video_file",
    "decoder_available",
    "expected_for",
    "hamming",
    "laplacian_variance",
    "make_previews",
    "phash",
    "qa_error",
    "read_audio",
    "read_video",
    "reseeded",
    "thumbnail",
    "waveform",
    "with_duplicates",
    "worst",
]
