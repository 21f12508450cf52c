"""A typed, read-only view over an ``/object_info`` dict: what each node class takes, gives and shows as widgets.

Both combo formats are normalised here so nobody else has to care: the V1 form puts the options list where the
type goes (``[["a", "b"], {...}]``), the V3 form says ``["COMBO", {"options": ["a", "b"], ...}]``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Catalogue", "InputSpec", "NodeClass"]

Section = Literal["required", "optional", "hidden"]

# Input types the frontend builds a widget for (frontend 1.27 widget constructors plus the DOM widgets registered
# by core extensions). Anything else is a socket: it can only be fed by a link.
_WIDGET_TYPES = frozenset(
    {
        "INT",
        "FLOAT",
        "BOOLEAN",
        "STRING",
        "COMBO",
        "MARKDOWN",
        "IMAGEUPLOAD",
        "COLOR",
        "TREESELECT",
        "MULTISELECT",
        "SELECTBUTTON",
        "TEXTAREA",
        "CHART",
        "GALLERIA",
        "IMAGECOMPARE",
        "FILEUPLOAD",
        "WEBCAM",
        "AUDIO_RECORD",
        "LOAD_3D",
        "LOAD_3D_ANIMATION",
    }
)
# Flags that make the frontend add an upload button widget after the combo; the button's value is saved in
# ``widgets_values`` but never sent to the API.
_UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "file_upload")
# Buttons that a core frontend extension adds after one input of one class (their names land in widgets_values).
_EXTENSION_BUTTONS: Mapping[tuple[str, str], int] = {
    ("Load3D", "model_file"): 2,  # "upload extra resources", "clear"
    ("Load3DAnimation", "model_file"): 2,
}
# INT inputs with these names get a control widget even without ``control_after_generate`` (frontend legacy rule).
_SEED_NAMES = frozenset({"seed", "noise_seed"})


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One input of a node class, as ``/object_info`` declares it."""

    name: str
    section: Section
    type: str  # "COMBO" for both combo formats; may be "*" or comma-separated ("IMAGE,MASK")
    config: Mapping[str, Any]
    raw: Any  # the spec exactly as /object_info gave it: ComfyUI echoes it as ``input_config`` in errors
    options: tuple[Any, ...] | None = None  # combo options, None when not a combo

    @property
    def is_combo(self) -> bool:
        return self.options is not None

    @property
    def is_widget(self) -> bool:
        """Whether the frontend shows a widget (and so stores a ``widgets_values`` entry) for this input."""
        if self.section == "hidden" or self.config.get("forceInput"):
            return False
        return self.type in _WIDGET_TYPES

    @property
    def has_control_after_generate(self) -> bool:
        """Whether a ``fixed|increment|decrement|randomize`` widget follows this one (saved, never sent)."""
        if not self.is_widget:
            return False
        if self.config.get("control_after_generate"):
            return self.type in ("INT", "COMBO")
        return self.type == "INT" and self.name in _SEED_NAMES

    @property
    def has_upload_widget(self) -> bool:
        return self.is_widget and any(self.config.get(flag) for flag in _UPLOAD_FLAGS)

    @property
    def upload_kind(self) -> str | None:
        """``"image"``, ``"video"``, ``"audio"`` or ``"file"`` when this input names an uploaded input file (what
        ``/object_info`` flags with ``image_upload`` and friends), else ``None``."""
        if not self.is_widget:
            return None
        return next((flag.removesuffix("_upload") for flag in _UPLOAD_FLAGS if self.config.get(flag)), None)

    @property
    def unserialised_widgets(self) -> int:
        """How many extra ``widgets_values`` entries the frontend stores after this input's own value."""
        extra = 0
        if self.has_control_after_generate:
            # A combo's control also brings a filter-list text widget.
            extra += 2 if self.type == "COMBO" else 1
        if self.has_upload_widget:
            extra += 1
        return extra

    @property
    def minimum(self) -> float | None:
        value = self.config.get("min")
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    @property
    def maximum(self) -> float | None:
        value = self.config.get("max")
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    @property
    def step(self) -> float | None:
        value = self.config.get("step")
        return value if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None


@dataclass(frozen=True, slots=True)
class NodeClass:
    """One node class: its inputs in ``input_order``, its outputs, and whether it is an output node."""

    name: str
    display_name: str
    inputs: tuple[InputSpec, ...]
    output_types: tuple[str, ...]
    output_names: tuple[str, ...]
    output_node: bool
    #: Where ComfyUI loaded the class from: ``nodes``, ``comfy_extras.*``, or ``custom_nodes.<pack folder>``.
    python_module: str = ""
    _by_name: Mapping[str, InputSpec] = field(repr=False, compare=False, default_factory=dict)

    def input(self, name: str) -> InputSpec | None:
        return self._by_name.get(name)

    def saved_after(self, spec: InputSpec) -> int:
        """How many ``widgets_values`` entries follow ``spec``'s own value and are never sent to the API."""
        return spec.unserialised_widgets + _EXTENSION_BUTTONS.get((self.name, spec.name), 0)

    @property
    def saved_widget_count(self) -> int:
        """How many ``widgets_values`` entries the current frontend saves for this class."""
        return sum(1 + self.saved_after(spec) for spec in self.widget_inputs)

    @property
    def widget_inputs(self) -> tuple[InputSpec, ...]:
        """The inputs that carry a widget, in the order the frontend creates them (required, then optional)."""
        return tuple(spec for spec in self.inputs if spec.is_widget)

    def inputs_in(self, *sections: Section) -> tuple[InputSpec, ...]:
        return tuple(spec for spec in self.inputs if spec.section in sections)


def _parse_input(name: str, section: Section, raw: Any) -> InputSpec:
    if isinstance(raw, str):  # hidden inputs are bare type strings
        return InputSpec(name=name, section=section, type=raw, config={}, raw=raw)
    if not isinstance(raw, list | tuple) or not raw:
        raise ValueError(f"input {name!r}: spec must be a non-empty list, got {raw!r}")
    head = raw[0]
    config = raw[1] if len(raw) > 1 and isinstance(raw[1], dict) else {}
    if isinstance(head, list | tuple):
        return InputSpec(name=name, section=section, type="COMBO", config=config, raw=raw, options=tuple(head))
    if not isinstance(head, str):
        raise ValueError(f"input {name!r}: type must be a string or a list of options, got {head!r}")
    if head == "COMBO":
        options = config.get("options", [])
        return InputSpec(
            name=name,
            section=section,
            type="COMBO",
            config=config,
            raw=raw,
            options=tuple(options) if isinstance(options, list | tuple) else (),
        )
    return InputSpec(name=name, section=section, type=head, config=config, raw=raw)


def _parse_class(name: str, info: Mapping[str, Any]) -> NodeClass:
    declared = info.get("input") or {}
    order = info.get("input_order") or {}
    specs: list[InputSpec] = []
    sections: tuple[Section, ...] = ("required", "optional", "hidden")
    for section in sections:
        block = declared.get(section) or {}
        # input_order is authoritative (it is what the frontend iterates); fall back to the dict's order.
        names = [n for n in order.get(section) or [] if n in block]
        names += [n for n in block if n not in names]
        specs.extend(_parse_input(n, section, block[n]) for n in names)
    outputs = info.get("output") or []
    output_names = info.get("output_name") or []
    return NodeClass(
        name=name,
        display_name=str(info.get("display_name") or name),
        inputs=tuple(specs),
        output_types=tuple(t if isinstance(t, str) else "COMBO" for t in outputs),
        output_names=tuple(str(n) for n in output_names),
        output_node=bool(info.get("output_node")),
        python_module=str(info.get("python_module") or ""),
        _by_name={spec.name: spec for spec in specs},
    )


class Catalogue(Mapping[str, NodeClass]):
    """Node classes by name, parsed lazily from an ``/object_info`` dict (which this never modifies)."""

    def __init__(self, object_info: Mapping[str, Any]) -> None:
        if not isinstance(object_info, Mapping):
            raise TypeError("object_info must be a mapping of class names to class descriptions")
        self._raw = object_info
        self._parsed: dict[str, NodeClass] = {}

    def __getitem__(self, name: str) -> NodeClass:
        parsed = self._parsed.get(name)
        if parsed is None:
            info = self._raw[name]
            try:
                parsed = _parse_class(name, info)
            except ValueError as exc:
                raise ValueError(f"/object_info entry {name!r}: {exc}") from exc
            self._parsed[name] = parsed
        return parsed

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)
