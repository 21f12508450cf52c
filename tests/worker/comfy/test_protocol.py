"""The prompt-following machine, driven by recordings of a real ComfyUI 0.3.64 (no sockets, no clock).

Binary frames are recorded as summaries (event type, length, format, metadata, the first 8 bytes of the image);
``frame_bytes`` rebuilds a frame with the same header and the recorded image magic, padded to the recorded length.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.worker.comfy._binary import BinaryFrameError, PreviewFrame, TextFrame, parse_binary_frame
from handlers.worker.comfy._protocol import (
    TERMINAL_EVENTS,
    Action,
    Adopted,
    Cached,
    Event,
    Failed,
    FollowState,
    GraphInfo,
    Interrupted,
    NodeStarted,
    Output,
    Preview,
    ProgressText,
    ProgressUpdate,
    PromptFollower,
    Queued,
    QueuePosition,
    Started,
    StepProgress,
    Succeeded,
    Vanished,
    is_api_format,
    rejected_outputs,
)

Frame = Mapping[str, Any] | bytes


# ------------------------------------------------------------------------------------------------ transcript loading


def frame_bytes(summary: Mapping[str, Any]) -> bytes:
    kind = summary["event_type"]
    if kind == 1:
        head = struct.pack(">II", 1, summary["image_format"]) + bytes.fromhex(summary["image_magic"])
    elif kind == 4:
        meta = json.dumps(summary["metadata"]).encode()
        head = struct.pack(">II", 4, len(meta)) + meta + bytes.fromhex(summary["image_magic"])
    elif kind == 3:
        node = summary["node_id"].encode()
        head = struct.pack(">II", 3, len(node)) + node + summary["text"].encode()
    else:
        raise AssertionError(f"unknown recorded binary frame {summary}")
    padding = b"\0" * max(0, int(summary["len"]) - len(head))
    return bytes(head + padding)


def frames_of(recorded: Sequence[Mapping[str, Any]]) -> list[Frame]:
    return [frame_bytes(f["msg"]) if f["msg"].get("binary") else f["msg"] for f in recorded]


@dataclass
class Transcript:
    name: str
    graph: dict[str, Any]
    prompt_id: str
    answer: dict[str, Any]
    frames: list[Frame]
    history: dict[str, Any] | None
    raw: dict[str, Any]

    @property
    def entry(self) -> dict[str, Any]:
        assert self.history is not None
        entry: dict[str, Any] = self.history[self.prompt_id]
        return entry

    def follower(self, **graph_options: Any) -> PromptFollower:
        return PromptFollower(self.prompt_id, GraphInfo.from_graph(self.graph, **graph_options))


def load(transcripts_dir: Path, name: str) -> Transcript:
    raw = json.loads((transcripts_dir / f"{name}.json").read_text())
    post = raw["post_prompt"]
    history = raw.get("history", {}).get("json")
    return Transcript(
        name,
        post["request_json"]["prompt"],
        post["json"]["prompt_id"],
        post["json"],
        frames_of(raw.get("ws", [])),
        history,
        raw,
    )


# Every recording of a prompt that ran to an end with its /history answer.
FINISHED = [
    "01_success",
    "02_cached_identical",
    "02b_partial_cache",
    "03_output_kinds",
    "18_validation_partial_ok",
    "30_exec_error_alloc",
    "31_after_error_good",
    "40_interrupt_global",
    "41_interrupt_targeted",
    "50_ws_image_legacy_client",
    "51_ws_image_feature_flags_client",
    "52_two_clients",
    "60_loadimage_uploaded",
    "80_ksampler_latent2rgb_first",
    "80_ksampler_latent2rgb_flags_first",
    "80_ksampler_nopreview_first",
    "81_ksampler_latent2rgb_flags_warm",
    "81_ksampler_latent2rgb_warm",
    "81_ksampler_nopreview_warm",
    "82_upscale_model_latent2rgb",
    "82_upscale_model_latent2rgb_flags",
    "82_upscale_model_nopreview",
    "83_ksampler_interrupt_latent2rgb",
    "83_ksampler_interrupt_latent2rgb_flags",
    "83_ksampler_interrupt_nopreview",
    "90_colon_ids_and___value__",
    "93_extra_unknown_input",
    "94_coercion",
    "95_progress_text_GetImageSize",
    "99_png_metadata",
]


def action(follower: PromptFollower) -> Action:
    """The next action, read through a call so mypy does not narrow it across feeds."""
    return follower.next_action


def feed(follower: PromptFollower, frames: Sequence[Frame]) -> list[Event]:
    events: list[Event] = []
    for frame in frames:
        events += follower.feed_binary(frame) if isinstance(frame, bytes) else follower.feed_message(frame)
    return events


def expected_terminal(entry: Mapping[str, Any]) -> type[Event]:
    status = entry["status"]
    if status["status_str"] == "success":
        return Succeeded
    kinds = [kind for kind, _ in status["messages"]]
    return Interrupted if "execution_interrupted" in kinds else Failed


def check_ending(t: Transcript, events: Sequence[Event]) -> None:
    """Exactly one terminal event, last; every history output reported exactly once; nothing else reported."""
    terminal = [e for e in events if isinstance(e, TERMINAL_EVENTS)]
    assert len(terminal) == 1, terminal
    assert events[-1] is terminal[0]
    assert isinstance(terminal[0], expected_terminal(t.entry))
    outputs = [e for e in events if isinstance(e, Output)]
    assert sorted(e.node for e in outputs) == sorted(t.entry["outputs"]), t.name
    for event in outputs:
        assert event.ui == t.entry["outputs"][event.node]
    if isinstance(terminal[0], Succeeded):
        assert dict(terminal[0].outputs) == t.entry["outputs"]


def test_every_recording_is_covered(transcripts_dir: Path) -> None:
    """Guard: the list above is every transcript with a finished prompt, so a new recording is not ignored."""
    names = set()
    for path in (transcripts_dir).glob("*.json"):
        raw = json.loads(path.read_text())
        if isinstance(raw, dict) and isinstance(raw.get("history"), dict) and raw.get("ws"):
            names.add(path.stem)
    assert names == set(FINISHED)


# --------------------------------------------------------------------------------------------- whole recordings


@pytest.mark.parametrize("name", FINISHED)
def test_recording_followed_to_the_end(transcripts_dir: Path, name: str) -> None:
    t = load(transcripts_dir, name)
    follower = t.follower()
    events = follower.note_queued(t.answer) + feed(follower, t.frames)
    # The end marker was seen, so the machine asks for history (written before the marker was sent).
    assert action(follower) is Action.POLL_HISTORY
    assert follower.state is FollowState.ENDING
    events += follower.feed_history(t.history or {})
    assert action(follower) is Action.DONE
    check_ending(t, events)
    # Outputs the socket announced are not reported again from history.
    assert sum(isinstance(e, Output) for e in events) == len(t.entry["outputs"])
    percents = [e.percent for e in events if isinstance(e, ProgressUpdate)]
    assert percents == sorted(percents), "overall progress must never go backwards"
    if isinstance(events[-1], Succeeded):
        assert percents[-1] == 100.0
    # A finished follower ignores whatever else arrives.
    assert feed(follower, t.frames) == []
    assert follower.feed_history(t.history or {}) == []


@pytest.mark.parametrize("name", FINISHED)
def test_socket_cut_at_every_point_then_history(transcripts_dir: Path, name: str) -> None:
    """Wherever the socket drops, one /history answer gives the right ending and the full output set."""
    t = load(transcripts_dir, name)
    for cut in range(len(t.frames) + 1):
        follower = t.follower()
        events = feed(follower, t.frames[:cut])
        follower.socket_lost()
        assert action(follower) is Action.POLL_HISTORY, cut
        events += follower.feed_history(t.history or {})
        check_ending(t, events)


@pytest.mark.parametrize("name", FINISHED)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_socket_cut_then_reconnect(transcripts_dir: Path, name: str, data: st.DataObject) -> None:
    """Cut, poll (not finished yet), reconnect later having lost frames in between: the ending is still right."""
    t = load(transcripts_dir, name)
    cut = data.draw(st.integers(0, len(t.frames)), label="cut")
    resume = data.draw(st.integers(cut, len(t.frames)), label="resume")
    follower = t.follower()
    events = feed(follower, t.frames[:cut])
    follower.socket_lost()
    events += follower.feed_history({})
    if action(follower) is Action.POLL_QUEUE:
        events += follower.feed_queue({"queue_running": [[0, t.prompt_id, {}, {}, []]], "queue_pending": []})
    assert action(follower) is Action.READ
    follower.socket_restored()
    running = {"queue_running": [[0, t.prompt_id, {}, {}, []]], "queue_pending": []}
    if data.draw(st.booleans(), label="poll before resuming"):
        events += follower.feed_history({})
        if action(follower) is Action.POLL_QUEUE:
            events += follower.feed_queue(running)
    events += feed(follower, t.frames[resume:])
    # From here on the prompt has ended: answer whatever the machine asks, as ComfyUI would.
    for _ in range(5):
        match action(follower):
            case Action.READ:
                follower.poll_due()  # the slow timer, when the end marker was among the lost frames
            case Action.POLL_HISTORY:
                events += follower.feed_history(t.history or {})
            case Action.POLL_QUEUE:
                events += follower.feed_queue({"queue_running": [], "queue_pending": []})
            case Action.DONE:
                break
    check_ending(t, events)


# ---------------------------------------------------------------------------------------------- specific behaviour


def kinds(events: Sequence[Event]) -> list[str]:
    out = []
    for e in events:
        if isinstance(e, ProgressUpdate):
            continue
        label = type(e).__name__
        if isinstance(e, NodeStarted | Output):
            label += f"({e.node})"
        out.append(label)
    return out


def test_success_event_sequence(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "01_success")
    follower = t.follower()
    events = follower.note_queued(t.answer) + feed(follower, t.frames) + follower.feed_history(t.history or {})
    assert kinds(events) == [
        "Queued",
        "Started",
        "NodeStarted(1)",
        "NodeStarted(5)",
        "Output(5)",
        "NodeStarted(2)",
        "NodeStarted(3)",
        "NodeStarted(4)",
        "Output(4)",
        "Succeeded",
    ]
    started = next(e for e in events if isinstance(e, NodeStarted) and e.node == "1")
    assert (started.class_type, started.title) == ("EmptyImage", "Empty Image")  # _meta.title wins
    out = next(e for e in events if isinstance(e, Output) and e.node == "4")
    assert out.ui == {"images": [{"filename": "basic_00001_.png", "subfolder": "probe", "type": "output"}]}
    done = events[-1]
    assert isinstance(done, Succeeded)
    assert [kind for kind, _ in done.messages] == ["execution_start", "execution_cached", "execution_success"]
    # Five nodes will run; each finished node adds 20%.
    assert [e.percent for e in events if isinstance(e, ProgressUpdate)][-1] == 100.0
    assert {e.percent for e in events if isinstance(e, ProgressUpdate)} >= {0.0, 20.0, 40.0, 60.0, 80.0, 100.0}


def test_fully_cached_prompt(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "02_cached_identical")
    follower = t.follower()
    events = feed(follower, t.frames)
    assert kinds(events) == ["Started", "Cached", "Output(4)", "Output(5)"]
    assert events[1] == Cached(("1", "2", "3", "4", "5"))
    # Cached nodes count as done, although no `executing` was ever sent for them.
    assert follower.progress.percent == 100.0
    assert follower.progress.done_nodes == follower.progress.total_nodes == 5


def test_partially_cached_prompt_counts_cached_nodes_as_done(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "02b_partial_cache")
    follower = t.follower()
    events = feed(follower, t.frames[:5])  # status, status, start, cached, executed(5)
    assert Cached(("1", "2", "5")) in events
    assert follower.progress.percent == 60.0  # 3 of 5


def test_partial_validation_leaves_rejected_outputs_out_of_the_percent(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "18_validation_partial_ok")
    assert rejected_outputs(t.answer["node_errors"]) == {"5"}
    info = GraphInfo.from_graph(t.graph, rejected=rejected_outputs(t.answer["node_errors"]))
    assert info.will_run == {"1", "2", "3"}
    follower = PromptFollower(t.prompt_id, info)
    queued = follower.note_queued(t.answer)
    assert queued == [Queued(t.prompt_id, 12, frozenset({"5"}))]
    feed(follower, t.frames)
    assert follower.progress.total_nodes == 3
    assert follower.progress.percent == 100.0


def test_execution_error_details(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "30_exec_error_alloc")
    follower = t.follower()
    events = feed(follower, t.frames) + follower.feed_history(t.history or {})
    failed = events[-1]
    assert isinstance(failed, Failed)
    d = failed.details
    assert (d.node_id, d.node_type, d.exception_type) == ("1", "EmptyImage", "RuntimeError")
    assert "can't allocate memory" in d.exception_message
    assert d.current_inputs["width"] == [16384]
    assert d.traceback and all(isinstance(line, str) for line in d.traceback)


@pytest.mark.parametrize(
    ("name", "node", "node_type"),
    [
        ("40_interrupt_global", "12", "ImageBlur"),
        ("41_interrupt_targeted", None, None),
        ("83_ksampler_interrupt_nopreview", "3", "KSampler"),
    ],
)
def test_interrupt_is_reported_as_interrupted(
    transcripts_dir: Path, name: str, node: str | None, node_type: str
) -> None:
    t = load(transcripts_dir, name)
    follower = t.follower()
    events = feed(follower, t.frames) + follower.feed_history(t.history or {})
    last = events[-1]
    assert isinstance(last, Interrupted)
    if node is not None:
        assert (last.node_id, last.node_type) == (node, node_type)


@pytest.mark.parametrize(
    ("name", "mime", "magic"),
    [
        ("50_ws_image_legacy_client", "image/png", b"\x89PNG"),  # type 1, PNG
        ("51_ws_image_feature_flags_client", "image/png", b"\x89PNG"),  # type 4
        ("81_ksampler_latent2rgb_warm", "image/jpeg", b"\xff\xd8"),  # type 1, JPEG, from a sampler
        ("81_ksampler_latent2rgb_flags_warm", "image/jpeg", b"\xff\xd8"),
    ],
)
def test_previews(transcripts_dir: Path, name: str, mime: str, magic: bytes) -> None:
    t = load(transcripts_dir, name)
    events = feed(t.follower(), t.frames)
    previews = [e for e in events if isinstance(e, Preview)]
    binary = [f for f in t.frames if isinstance(f, bytes)]
    assert len(previews) == len(binary) > 0
    sampler = "3" if name.startswith("81") else "2"
    for preview in previews:
        assert (preview.node, preview.mime) == (sampler, mime)
        assert preview.data.startswith(magic)


def test_sampler_steps_subdivide_their_node(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "81_ksampler_nopreview_warm")
    follower = t.follower()
    events = feed(follower, t.frames)
    steps = [e for e in events if isinstance(e, StepProgress)]
    assert [(s.node, s.value, s.max) for s in steps] == [("3", i, 4) for i in range(1, 5)]
    total = follower.progress.total_nodes
    cached = len(t.raw["ws"][3]["msg"]["data"]["nodes"])
    during = [e for e in events if isinstance(e, ProgressUpdate) and e.step is not None and e.done_nodes == cached]
    assert [e.percent for e in during] == [round(100 * (cached + i / 4) / total, 1) for i in range(1, 5)]
    assert all(e.class_type == "KSampler" and e.steps == 4 for e in during)


def test_progress_text(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "95_progress_text_GetImageSize")
    events = feed(t.follower(), t.frames)
    assert ProgressText("2", "width: 40, height: 30\n batch size: 2") in events


def test_reconnect_executing_without_prompt_id(transcripts_dir: Path) -> None:
    """After a reconnect ComfyUI sends `executing` with no prompt id: it still moves the follower on."""
    raw = json.loads((transcripts_dir / "97_reconnect_same_clientId.json").read_text())
    prompt_id = raw["post_prompt"]["json"]["prompt_id"]
    follower = PromptFollower(prompt_id, GraphInfo.from_graph(raw["post_prompt"]["request_json"]["prompt"]))
    follower.socket_lost()
    follower.feed_history({})
    follower.feed_queue({"queue_running": [[15, prompt_id, {}, {}, ["2"]]], "queue_pending": []})
    follower.socket_restored()
    events = feed(follower, frames_of(raw["ws"]))
    assert kinds(events)[:2] == ["NodeStarted(11)", "NodeStarted(12)"]
    assert kinds(events)[-1] == "Output(2)"
    assert action(follower) is Action.POLL_HISTORY  # the end marker was seen


def test_messages_for_other_prompts_are_ignored(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "01_success")
    stranger = PromptFollower("someone-else", GraphInfo.from_graph(t.graph))
    assert feed(stranger, t.frames) == []
    assert action(stranger) is Action.READ
    # A socket without client_id gets only status and the broadcast progress_state of other prompts.
    raw = json.loads((transcripts_dir / "53_no_client_id.json").read_text())
    assert feed(stranger, frames_of(raw["ws_A"])) == []
    other = json.loads((transcripts_dir / "52_two_clients.json").read_text())
    assert feed(stranger, frames_of(other["other_client_ws"])) == []


def test_completion_only_in_history_when_socket_never_saw_anything(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "03_output_kinds")
    follower = t.follower()
    follower.socket_lost()
    events = follower.feed_history(t.history or {})
    check_ending(t, events)
    assert sum(isinstance(e, Output) for e in events) == len(t.entry["outputs"]) > 3


def test_adopting_a_finished_prompt_reads_history(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "01_success")
    follower = t.follower()
    assert follower.note_adopted("finished") == [Adopted(t.prompt_id, "finished")]
    assert action(follower) is Action.POLL_HISTORY
    check_ending(t, follower.feed_history(t.history or {}))


def test_history_lost_but_socket_saw_the_end(transcripts_dir: Path) -> None:
    """If history no longer has the prompt (cleared, capped) the socket's own record of the end is used."""
    t = load(transcripts_dir, "01_success")
    follower = t.follower()
    feed(follower, t.frames)
    assert follower.feed_history({}) == []
    assert action(follower) is Action.POLL_QUEUE
    assert follower.feed_queue({"queue_running": [], "queue_pending": []}) == []
    assert action(follower) is Action.POLL_HISTORY
    events = follower.feed_history({})
    assert len(events) == 1
    assert isinstance(events[0], Succeeded)
    assert dict(events[0].outputs) == t.entry["outputs"]


def test_vanished_prompt() -> None:
    follower = PromptFollower("p", GraphInfo.from_graph({"1": {"class_type": "SaveImage", "inputs": {}}}))
    follower.socket_lost()
    assert follower.feed_history({}) == []
    assert action(follower) is Action.POLL_QUEUE
    assert follower.feed_queue({"queue_running": [], "queue_pending": []}) == []
    # Absent from the queue: it may have just finished, so history is asked once more before giving up.
    assert action(follower) is Action.POLL_HISTORY
    assert follower.feed_history({}) == [Vanished("p")]
    assert action(follower) is Action.DONE


def test_finished_between_queue_and_history_polls(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "31_after_error_good")
    follower = t.follower()
    follower.socket_lost()
    follower.feed_history({})
    follower.feed_queue({"queue_running": [], "queue_pending": []})
    check_ending(t, follower.feed_history(t.history or {}))


def test_queue_position_and_start_from_queue(transcripts_dir: Path) -> None:
    raw = json.loads((transcripts_dir / "42_queue_ops.json").read_text())
    queue = raw["GET_queue_while_running"]["json"]
    info = GraphInfo.from_graph({"1": {"class_type": "SaveImage", "inputs": {}}})
    pending = PromptFollower("ae645d15-4bfc-403d-ad82-f12b1d618784", info)  # number 24; -25 and 23 go first
    pending.feed_history({})
    assert pending.feed_queue(queue) == [QueuePosition(3)]
    pending.feed_history({})
    assert pending.feed_queue(queue) == []  # unchanged position: no new event
    running = PromptFollower("8d919011-6ecf-4660-ac03-77927df98ddc", info)
    running.feed_history({})
    assert running.feed_queue(queue) == [Started(running.prompt_id)]
    assert running.state is FollowState.RUNNING


def test_lost_socket_history_not_ready_asks_queue(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "01_success")
    follower = t.follower()
    feed(follower, t.frames[:8])
    assert action(follower) is Action.READ
    follower.poll_due()
    assert action(follower) is Action.POLL_HISTORY
    follower.feed_history({})
    # Socket up and running: an empty history is normal, no /queue needed.
    assert action(follower) is Action.READ


# ------------------------------------------------------------------------------------------------ graph and frames


def test_graph_info(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "90_colon_ids_and___value__")
    info = GraphInfo.from_graph(t.graph)
    assert info.will_run == {"7:1", "7:2", "9", "10", "11"}
    assert info.title("7:1") == "inner"
    assert info.title("7:2") == "ImageInvert"
    assert info.class_type("9") == "PreviewImage"
    # With the catalogue's output nodes, a dangling non-output node is known not to run.
    dangling = {**t.graph, "50": {"class_type": "ImageInvert", "inputs": {"image": ["7:1", 0]}}}
    assert "50" in GraphInfo.from_graph(dangling).will_run
    assert "50" not in GraphInfo.from_graph(dangling, output_nodes={"9", "11"}).will_run


def test_is_api_format(transcripts_dir: Path) -> None:
    ui = json.loads((transcripts_dir / "92_ui_format_posted.json").read_text())
    assert not is_api_format(ui["post_prompt"]["request_json"]["prompt"])
    assert is_api_format(load(transcripts_dir, "01_success").graph)
    assert not is_api_format({})


def test_binary_frames() -> None:
    meta = json.dumps({"node_id": "7:1", "display_node_id": "7", "prompt_id": "p", "image_type": "image/webp"})
    frame = struct.pack(">II", 4, len(meta)) + meta.encode() + b"RIFF"
    parsed = parse_binary_frame(frame)
    assert isinstance(parsed, PreviewFrame)
    assert (parsed.prompt_id, parsed.node_id, parsed.mime, parsed.data) == ("p", "7", "image/webp", b"RIFF")
    assert parse_binary_frame(struct.pack(">II", 3, 1) + b"5hello") == TextFrame("5", "hello")
    assert parse_binary_frame(struct.pack(">I", 99) + b"future") is None
    for broken in (b"\0\0", struct.pack(">II", 4, 500) + b"{}", struct.pack(">II", 4, 2) + b"[]", b"\0\0\0\1"):
        with pytest.raises(BinaryFrameError):
            parse_binary_frame(broken)


def test_bad_binary_frames_and_foreign_previews_are_ignored(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "51_ws_image_feature_flags_client")
    follower = t.follower()
    feed(follower, t.frames[:6])
    assert follower.feed_binary(b"\0\0\0\4\0\0\x09\x09") == []
    meta = json.dumps({"node_id": "2", "prompt_id": "another", "image_type": "image/png"}).encode()
    assert follower.feed_binary(struct.pack(">II", 4, len(meta)) + meta + b"\x89PNG") == []
