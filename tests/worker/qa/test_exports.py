"""``handlers.worker.qa``'s public surface is pinned: adding or removing a name is a deliberate change."""

from __future__ import annotations

from handlers.worker import qa


def test_all_is_pinned_and_sorted() -> None:
    assert qa.__all__ == sorted(qa.__all__)
    assert set(qa.__all__) == {name for name in dir(qa) if not name.startswith("_")} - {
        "_audio",
        "_checks",
        "_expect",
        "_image",
        "_job",
        "_previews",
        "_reseed",
        "_verdicts",
        "_video",
    }
    assert qa.__all__ == [
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
