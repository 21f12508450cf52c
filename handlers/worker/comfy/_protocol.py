"""Following one ComfyUI prompt, as a pure state machine (no I/O, no clock).

Feed it what ComfyUI says about the prompt - WebSocket messages (parsed JSON objects and binary frames), and HTTP
answers (``/history/{id}``, ``/queue``) - and read back typed events. ``next_action`` tells the I/O layer what to do
next: keep reading the socket, poll ``/history`` now, poll ``/queue`` now, or stop.

What the machine relies on (recorded from ComfyUI 0.3.64, see ``comfyui/PROTOCOL.md``):

* cached nodes get no ``executing``; cached output nodes get ``executed`` again;
* ``execution_success``/``execution_error``/``execution_interrupted`` come before history is written, and the end
  marker (``executing`` with ``node: null``) after it, so the end marker is the moment to fetch ``/history``;
* history is authoritative: the terminal event is built from it, exactly once, whether the socket saw the end or not;
* ``/history/{id}`` is ``{}`` until the prompt ends; a prompt absent from ``/queue`` *and then* from history is gone.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from handlers.worker.comfy._binary import (
    PREVIEW_IMAGE_WITH_METADATA,
    BinaryFrameError,
    PreviewFrame,
    TextFrame,
    parse_binary_frame,
)

__all__ = [
    "TERMINAL_EVENTS",
    "Action",
    "Adopted",
    "Cached",
    "Event",
    "ExecutionErrorDetails",
    "Failed",
    "FollowState",
    "GraphInfo",
    "Interrupted",
    "NodeStarted",
    "Output",
    "Preview",
    "ProgressText",
    "ProgressUpdate",
    "PromptFollower",
    "QueuePosition",
    "Queued",
    "Started",
    "StepProgress",
    "Succeeded",
    "Vanished",
    "is_api_format",
    "rejected_outputs",
]

Graph = Mapping[str, Any]
UI = Mapping[str, Any]


# ---------------------------------------------------------------------------------------------------------------- graph


def is_api_format(graph: object) -> bool:
    """True when ``graph`` looks like ComfyUI's API format: ``{id: {"class_type": str, "inputs": {...}}}``."""
    if not isinstance(graph, Mapping) or not graph:
        return False
    return all(isinstance(node, Mapping) and isinstance(node.get("class_type"), str) for node in graph.values())


def rejected_outputs(node_errors: Mapping[str, Any]) -> frozenset[str]:
    """The output nodes that ComfyUI will not run, from a ``/prompt`` answer's ``node_errors``."""
    rejected: set[str] = set()
    for error in node_errors.values():
        if isinstance(error, Mapping):
            rejected.update(str(node) for node in error.get("dependent_outputs") or ())
    return frozenset(rejected)


@dataclass(frozen=True, slots=True)
class GraphInfo:
    """What the follower needs to know about an API-format graph: class types, titles, and the nodes that will run.

    ComfyUI runs only the ancestors of the output nodes it accepted. Without ``/object_info`` the output nodes are
    guessed as the sinks (nodes nothing links from); pass ``output_nodes`` when the catalogue is at hand.
    """

    class_types: Mapping[str, str]
    titles: Mapping[str, str]
    will_run: frozenset[str]
    #: Expected cost per node (``_progress_cost``): progress is the share of it done. Empty: every node counts one.
    weights: Mapping[str, float] = field(default_factory=dict)

    def weight(self, node_id: str) -> float:
        return self.weights.get(node_id, 1.0) if self.weights else 1.0

    @classmethod
    def from_graph(
        cls,
        graph: Graph,
        *,
        output_nodes: Collection[str] | None = None,
        rejected: Collection[str] = frozenset(),
        weights: Mapping[str, float] | None = None,
    ) -> GraphInfo:
        class_types: dict[str, str] = {}
        titles: dict[str, str] = {}
        parents: dict[str, set[str]] = {}
        for node_id, node in graph.items():
            if not isinstance(node, Mapping):
                continue
            class_type = str(node.get("class_type", ""))
            class_types[node_id] = class_type
            meta = node.get("_meta")
            title = meta.get("title") if isinstance(meta, Mapping) else None
            titles[node_id] = title if isinstance(title, str) and title else class_type
            inputs = node.get("inputs")
            links = parents.setdefault(node_id, set())
            if isinstance(inputs, Mapping):
                for value in inputs.values():
                    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                        links.add(value[0])
        linked = set().union(*parents.values()) if parents else set()
        outputs = set(output_nodes) if output_nodes is not None else {n for n in class_types if n not in linked}
        will_run: set[str] = set()
        stack = [n for n in outputs - set(rejected) if n in class_types]
        while stack:
            node_id = stack.pop()
            if node_id in will_run:
                continue
            will_run.add(node_id)
            stack.extend(p for p in parents.get(node_id, ()) if p in class_types)
        return cls(class_types, titles, frozenset(will_run), dict(weights or {}))

    def class_type(self, node_id: str | None) -> str | None:
        return self.class_types.get(node_id) if node_id is not None else None

    def title(self, node_id: str | None) -> str | None:
        return self.titles.get(node_id) if node_id is not None else None


# --------------------------------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Queued:
    """``/prompt`` accepted the prompt. ``rejected_outputs`` are output nodes it dropped (HTTP 200 with node_errors)."""

    prompt_id: str
    number: float | None
    rejected_outputs: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Adopted:
    """The prompt id was already known to ComfyUI (a retried job): it is followed instead of queued again."""

    prompt_id: str
    found: Literal["finished", "running", "pending"]


@dataclass(frozen=True, slots=True)
class QueuePosition:
    """The prompt waits in ``/queue`` behind ``ahead`` prompts (running ones included)."""

    ahead: int


@dataclass(frozen=True, slots=True)
class Started:
    prompt_id: str


@dataclass(frozen=True, slots=True)
class Cached:
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NodeStarted:
    node: str
    display_node: str
    class_type: str | None
    title: str | None


@dataclass(frozen=True, slots=True)
class StepProgress:
    """A node's own progress, such as sampler steps or upscale tiles."""

    node: str
    value: int | float
    max: int | float


@dataclass(frozen=True, slots=True)
class ProgressText:
    node: str
    text: str


@dataclass(frozen=True, slots=True)
class Preview:
    """A preview image. ``node`` is ``None`` when neither the frame nor the stream says which node sent it."""

    node: str | None
    mime: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Output:
    """An output node's ui result (``images``, ``audio``, ``text``...), reported once per node."""

    node: str
    display_node: str
    class_type: str | None
    title: str | None
    ui: UI


@dataclass(frozen=True, slots=True)
class ProgressUpdate:
    """Overall progress: percent over the nodes that will run (cached ones count as done, steps subdivide a node)."""

    percent: float
    node: str | None
    class_type: str | None
    title: str | None
    step: int | float | None
    steps: int | float | None
    done_nodes: int
    total_nodes: int


@dataclass(frozen=True, slots=True)
class Succeeded:
    prompt_id: str
    outputs: Mapping[str, UI]
    messages: tuple[tuple[str, Mapping[str, Any]], ...]


@dataclass(frozen=True, slots=True)
class ExecutionErrorDetails:
    """ComfyUI's ``execution_error`` payload, typed."""

    node_id: str | None
    node_type: str | None
    exception_type: str
    exception_message: str
    traceback: tuple[str, ...] = ()
    current_inputs: Mapping[str, Any] = field(default_factory=dict)
    executed: tuple[str, ...] = ()

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> ExecutionErrorDetails:
        node_id = data.get("node_id")
        node_type = data.get("node_type")
        traceback = data.get("traceback")
        inputs = data.get("current_inputs")
        executed = data.get("executed")
        return cls(
            node_id=str(node_id) if node_id is not None else None,
            node_type=str(node_type) if node_type is not None else None,
            exception_type=str(data.get("exception_type") or "Exception"),
            exception_message=str(data.get("exception_message") or ""),
            traceback=tuple(str(line) for line in traceback) if isinstance(traceback, list) else (),
            current_inputs=dict(inputs) if isinstance(inputs, Mapping) else {},
            executed=tuple(str(n) for n in executed) if isinstance(executed, list) else (),
        )


@dataclass(frozen=True, slots=True)
class Failed:
    prompt_id: str
    details: ExecutionErrorDetails


@dataclass(frozen=True, slots=True)
class Interrupted:
    prompt_id: str
    node_id: str | None
    node_type: str | None


@dataclass(frozen=True, slots=True)
class Vanished:
    """The prompt is neither queued, running nor in history: ComfyUI restarted, or someone deleted it."""

    prompt_id: str


Event = (
    Queued
    | Adopted
    | QueuePosition
    | Started
    | Cached
    | NodeStarted
    | StepProgress
    | ProgressText
    | Preview
    | Output
    | ProgressUpdate
    | Succeeded
    | Failed
    | Interrupted
    | Vanished
)
#: The events after which a follower is done (only Succeeded is yielded by the client; the others raise).
TERMINAL_EVENTS = (Succeeded, Failed, Interrupted, Vanished)


# -------------------------------------------------------------------------------------------------------------- machine


class FollowState(enum.Enum):
    WAITING = "waiting"  # queued, not seen running yet
    RUNNING = "running"
    ENDING = "ending"  # a terminal message or the end marker was seen; history decides
    DONE = "done"


class Action(enum.Enum):
    READ = "read"  # wait for the next WebSocket message (and poll /history on the slow timer)
    POLL_HISTORY = "poll_history"
    POLL_QUEUE = "poll_queue"
    DONE = "done"


class PromptFollower:
    """One prompt's protocol machine. Every ``feed_*``/``note_*`` method returns the events it produced."""

    def __init__(self, prompt_id: str, graph: GraphInfo) -> None:
        self.prompt_id = prompt_id
        self.graph = graph
        self.state = FollowState.WAITING
        self._socket_up = True
        self._poll_history = False
        self._poll_queue = False
        self._absent_from_queue = False
        self._reported: dict[str, str] = {}  # node -> canonical JSON of the ui already reported
        self._done_nodes: set[str] = set()
        self._current: str | None = None
        self._current_display: str | None = None
        self._step: int | float | None = None
        self._steps: int | float | None = None
        self._percent = 0.0
        self._last_update: ProgressUpdate | None = None
        self._queue_ahead: int | None = None
        self._ws_terminal: tuple[str, Mapping[str, Any]] | None = None

    # ------------------------------------------------------------------------------------------------------ queries

    @property
    def done(self) -> bool:
        return self.state is FollowState.DONE

    @property
    def next_action(self) -> Action:
        if self.state is FollowState.DONE:
            return Action.DONE
        if self._poll_history:
            return Action.POLL_HISTORY
        if self._poll_queue:
            return Action.POLL_QUEUE
        return Action.READ

    @property
    def socket_up(self) -> bool:
        return self._socket_up

    @property
    def progress(self) -> ProgressUpdate:
        return self._snapshot()

    # ----------------------------------------------------------------------------------------------- notes from I/O

    def note_queued(self, answer: Mapping[str, Any]) -> list[Event]:
        """Feed the ``/prompt`` answer. Outputs that failed validation leave the set of nodes that will run."""
        errors = answer.get("node_errors")
        rejected = rejected_outputs(errors) if isinstance(errors, Mapping) else frozenset()
        number = answer.get("number")
        return [Queued(self.prompt_id, number if isinstance(number, int | float) else None, rejected)]

    def note_adopted(self, found: Literal["finished", "running", "pending"]) -> list[Event]:
        if found == "finished":
            self._poll_history = True
        return [Adopted(self.prompt_id, found)]

    def socket_lost(self) -> list[Event]:
        """The WebSocket dropped (or messages were lost): completion may now only be visible in history."""
        self._socket_up = False
        if not self.done:
            self._poll_history = True
        return []

    def socket_restored(self) -> list[Event]:
        self._socket_up = True
        if not self.done:
            # Whatever ended while the socket was down is in history already.
            self._poll_history = True
        return []

    def poll_due(self) -> list[Event]:
        """The I/O layer's slow timer fired: confirm with /history that nothing was missed."""
        if not self.done:
            self._poll_history = True
        return []

    # ---------------------------------------------------------------------------------------------- HTTP answers

    def feed_history(self, body: Mapping[str, Any]) -> list[Event]:
        """Feed a ``/history/{prompt_id}`` body: ``{}`` while the prompt has not ended, else ``{prompt_id: entry}``."""
        if self.done:
            return []
        self._poll_history = False
        entry = body.get(self.prompt_id)
        if isinstance(entry, Mapping):
            return self._finish_from_history(entry)
        if self._absent_from_queue:
            return self._vanish()
        if not (self.state is FollowState.RUNNING and self._socket_up):
            # Waiting, ending, or blind: only /queue can tell "still coming" from "gone".
            self._poll_queue = True
        return []

    def feed_queue(self, body: Mapping[str, Any]) -> list[Event]:
        """Feed a ``/queue`` body (``queue_running`` and ``queue_pending`` lists of ``[number, id, ...]``)."""
        if self.done:
            return []
        self._poll_queue = False
        running = _queue_ids(body.get("queue_running"))
        pending = _queue_items(body.get("queue_pending"))
        events: list[Event] = []
        if self.prompt_id in running:
            events += self._start()
            return events
        mine = [item for item in pending if item[1] == self.prompt_id]
        if mine:
            number = mine[0][0]
            ahead = len(running) + sum(1 for item in pending if item[0] < number)
            if ahead != self._queue_ahead:
                self._queue_ahead = ahead
                events.append(QueuePosition(ahead))
            return events
        # Absent: it either finished between our two requests or it is gone; history tells which.
        self._absent_from_queue = True
        self._poll_history = True
        return events

    # ----------------------------------------------------------------------------------------- WebSocket frames

    def feed_binary(self, data: bytes) -> list[Event]:
        if self.done:
            return []
        try:
            frame = parse_binary_frame(data)
        except BinaryFrameError:
            return []  # a preview is decoration: a bad one must not fail the job
        if isinstance(frame, PreviewFrame):
            if frame.event_type == PREVIEW_IMAGE_WITH_METADATA:
                if frame.prompt_id not in (None, self.prompt_id):
                    return []
                node = frame.node_id or self._current_display
            else:
                node = self._current_display
            return [Preview(node, frame.mime, frame.data)]
        # Text is broadcast to every socket with no prompt id: accept only what plausibly comes from this prompt.
        if (
            isinstance(frame, TextFrame)
            and self.state is FollowState.RUNNING
            and frame.node_id in self.graph.class_types
        ):
            return [ProgressText(frame.node_id, frame.text)]
        return []

    def feed_message(self, message: Mapping[str, Any]) -> list[Event]:
        """Feed one parsed JSON WebSocket message. Messages naming another prompt are ignored."""
        if self.done:
            return []
        kind = message.get("type")
        data = message.get("data")
        if not isinstance(kind, str) or not isinstance(data, Mapping):
            return []
        prompt_id = data.get("prompt_id")
        if prompt_id is not None and prompt_id != self.prompt_id:
            return []
        if prompt_id is None and kind != "executing":
            # Only the reconnect `executing` legitimately lacks a prompt id (status, logs... are not ours).
            return []
        match kind:
            case "execution_start":
                return self._start()
            case "execution_cached":
                return self._on_execution_cached(data)
            case "executing":
                return self._on_executing(data)
            case "progress":
                return self._on_progress(data)
            case "progress_state":
                return self._on_progress_state(data)
            case "executed":
                return self._on_executed(data)
            case "execution_success" | "execution_error" | "execution_interrupted":
                return self._on_terminal(kind, data)
        return []

    def _on_execution_cached(self, data: Mapping[str, Any]) -> list[Event]:
        events = self._start()
        nodes = tuple(str(n) for n in data.get("nodes") or ())
        if nodes:
            self._done_nodes.update(nodes)
            events.append(Cached(nodes))
        return events + self._progress_changed()

    def _on_executing(self, data: Mapping[str, Any]) -> list[Event]:
        node = data.get("node")
        if node is None:
            if data.get("prompt_id") != self.prompt_id:
                return []
            # The end marker: history is written by now.
            if self.state is not FollowState.DONE:
                self.state = FollowState.ENDING
            self._poll_history = True
            return []
        node = str(node)
        events = self._start()
        if node == self._current:
            return events  # the reconnect repeat of the node already running
        if self._current is not None:
            self._done_nodes.add(self._current)
        display = data.get("display_node")
        self._current = node
        self._current_display = str(display) if display is not None else node
        self._step = self._steps = None
        events.append(NodeStarted(node, self._current_display, self.graph.class_type(node), self.graph.title(node)))
        return events + self._progress_changed()

    def _on_progress(self, data: Mapping[str, Any]) -> list[Event]:
        node = data.get("node")
        value = data.get("value")
        maximum = data.get("max")
        if node is None or not isinstance(value, int | float) or not isinstance(maximum, int | float):
            return []
        events = self._start()
        node = str(node)
        if node != self._current:
            self._current = self._current_display = node
        self._step, self._steps = value, maximum
        events.append(StepProgress(node, value, maximum))
        return events + self._progress_changed()

    def _on_progress_state(self, data: Mapping[str, Any]) -> list[Event]:
        nodes = data.get("nodes")
        if not isinstance(nodes, Mapping):
            return []
        finished = {str(n) for n, s in nodes.items() if isinstance(s, Mapping) and s.get("state") == "finished"}
        if finished <= self._done_nodes:
            return []
        self._done_nodes |= finished
        return self._start() + self._progress_changed()

    def _on_executed(self, data: Mapping[str, Any]) -> list[Event]:
        node = data.get("node")
        output = data.get("output")
        if node is None:
            return []
        events = self._start()
        node = str(node)
        display = data.get("display_node")
        self._done_nodes.add(node)
        if isinstance(output, Mapping):
            events += self._output(node, str(display) if display is not None else node, output)
        return events + self._progress_changed()

    def _on_terminal(self, kind: str, data: Mapping[str, Any]) -> list[Event]:
        # Kept for the rare case that history never shows the prompt; the end marker triggers the poll.
        self._ws_terminal = (kind, data)
        if self.state is not FollowState.DONE:
            self.state = FollowState.ENDING
        return []

    # --------------------------------------------------------------------------------------------------- helpers

    def _start(self) -> list[Event]:
        if self.state is FollowState.WAITING:
            self.state = FollowState.RUNNING
            self._absent_from_queue = False
            return [Started(self.prompt_id)]
        return []

    def _output(self, node: str, display: str, ui: UI) -> list[Event]:
        key = json.dumps(ui, sort_keys=True, default=str)
        if self._reported.get(node) == key:
            return []
        self._reported[node] = key
        return [Output(node, display, self.graph.class_type(node), self.graph.title(node), ui)]

    def _snapshot(self) -> ProgressUpdate:
        run = self.graph.will_run
        done = len(self._done_nodes & run)
        fraction = 0.0
        current = self._current
        if current in run and current not in self._done_nodes and self._step is not None and self._steps:
            fraction = min(max(float(self._step) / float(self._steps), 0.0), 1.0)
        # Weighted by expected cost, so the bar moves with time (a sampler step is worth more than a save node).
        total = sum(self.graph.weight(n) for n in run)
        spent = sum(self.graph.weight(n) for n in self._done_nodes & run)
        if current is not None and fraction:
            spent += self.graph.weight(current) * fraction
        percent = 100.0 * spent / total if total > 0 else 0.0
        # Never go backwards: a late progress_state or a re-announced node must not make the bar jump back.
        self._percent = max(self._percent, min(percent, 100.0))
        return ProgressUpdate(
            percent=round(self._percent, 1),
            node=current,
            class_type=self.graph.class_type(current),
            title=self.graph.title(current),
            step=self._step,
            steps=self._steps,
            done_nodes=done,
            total_nodes=len(run),
        )

    def _progress_changed(self) -> list[Event]:
        update = self._snapshot()
        if update == self._last_update:
            return []
        self._last_update = update
        return [update]

    def _history_outputs(self, entry: Mapping[str, Any]) -> list[Event]:
        outputs = entry.get("outputs")
        meta = entry.get("meta")
        events: list[Event] = []
        if not isinstance(outputs, Mapping):
            return events
        for node, ui in outputs.items():
            if not isinstance(ui, Mapping) or str(node) in self._reported:
                continue
            node_meta = meta.get(node) if isinstance(meta, Mapping) else None
            display = node_meta.get("display_node") if isinstance(node_meta, Mapping) else None
            events += self._output(str(node), str(display) if display is not None else str(node), ui)
        return events

    def _finish_from_history(self, entry: Mapping[str, Any]) -> list[Event]:
        events = self._history_outputs(entry)
        status = entry.get("status")
        status = status if isinstance(status, Mapping) else {}
        messages = tuple(_messages(status.get("messages")))
        outputs = entry.get("outputs")
        outputs = dict(outputs) if isinstance(outputs, Mapping) else {}
        if status.get("status_str", "success") == "success":
            self._done_nodes |= self.graph.will_run
            self._percent = 100.0
            events += self._progress_changed()
            events.append(Succeeded(self.prompt_id, outputs, messages))
        else:
            events.append(self._failure(messages))
        self.state = FollowState.DONE
        self._poll_history = self._poll_queue = False
        return events

    def _failure(self, messages: Iterable[tuple[str, Mapping[str, Any]]]) -> Event:
        for kind, data in reversed(list(messages)):
            if kind == "execution_interrupted":
                return _interrupted(self.prompt_id, data)
            if kind == "execution_error":
                return Failed(self.prompt_id, ExecutionErrorDetails.from_message(data))
        return Failed(
            self.prompt_id,
            ExecutionErrorDetails(None, None, "UnknownError", "ComfyUI reported an error without details"),
        )

    def _vanish(self) -> list[Event]:
        self.state = FollowState.DONE
        self._poll_history = self._poll_queue = False
        if self._ws_terminal is not None:
            # History was lost (cleared, or capped) but the socket saw how it ended: trust the socket.
            kind, data = self._ws_terminal
            if kind == "execution_success":
                outputs = {node: json.loads(ui) for node, ui in self._reported.items()}
                return [Succeeded(self.prompt_id, outputs, ())]
            return [self._failure([(kind, data)])]
        return [Vanished(self.prompt_id)]


def _interrupted(prompt_id: str, data: Mapping[str, Any]) -> Interrupted:
    node_id = data.get("node_id")
    node_type = data.get("node_type")
    return Interrupted(
        prompt_id, str(node_id) if node_id is not None else None, str(node_type) if node_type is not None else None
    )


def _messages(raw: object) -> Iterable[tuple[str, Mapping[str, Any]]]:
    if not isinstance(raw, list):
        return
    for item in raw:
        if isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str):
            data = item[1] if isinstance(item[1], Mapping) else {}
            yield item[0], data


def _queue_items(raw: object) -> list[tuple[float, str]]:
    items: list[tuple[float, str]] = []
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, list) and len(item) >= 2 and isinstance(item[1], str):
                number = item[0] if isinstance(item[0], int | float) else 0
                items.append((float(number), item[1]))
    return items


def _queue_ids(raw: object) -> set[str]:
    return {prompt_id for _, prompt_id in _queue_items(raw)}
