"""Small node classes for engine tests that must not depend on the real node set."""

from __future__ import annotations

from typing import Any, ClassVar

from handlers.local.comfyui._node import Folders, Node, NodeContext, NodeOutput


class Number(Node):
    CLASS_TYPE = "Number"
    RETURN_TYPES = ("INT",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {"value": ["INT", {"default": 0, "min": -10, "max": 10}]},
            "optional": {"label": ["STRING", {}]},
        }

    async def execute(self, ctx: NodeContext, *, value: int, **_: Any) -> NodeOutput:
        return NodeOutput((value,))


class Add(Node):
    CLASS_TYPE = "Add"
    RETURN_TYPES = ("INT",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"a": ["INT", {}], "b": ["INT", {}]}}

    async def execute(self, ctx: NodeContext, *, a: int, b: int, **_: Any) -> NodeOutput:
        return NodeOutput((a + b,))


class Steps(Node):
    """Sampler-like: one ``progress`` per step (value from 1), a preview each step when asked."""

    CLASS_TYPE = "Steps"
    RETURN_TYPES = ("INT",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"steps": ["INT", {"min": 1, "max": 1000}], "preview": ["BOOLEAN", {}]}}

    async def execute(self, ctx: NodeContext, *, steps: int, preview: bool, **_: Any) -> NodeOutput:
        for step in range(1, steps + 1):
            await ctx.progress(step, steps, preview=b"\xff\xd8jpeg" if preview else None)
        return NodeOutput((steps,))


class Say(Node):
    CLASS_TYPE = "Say"
    RETURN_TYPES = ("STRING",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"text": ["STRING", {}]}}

    async def execute(self, ctx: NodeContext, *, text: str, **_: Any) -> NodeOutput:
        ctx.send_text(text)
        return NodeOutput((text,))


class Fail(Node):
    CLASS_TYPE = "Fail"
    RETURN_TYPES = ("INT",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"value": ["INT", {}]}}

    async def execute(self, ctx: NodeContext, *, value: int, **_: Any) -> NodeOutput:
        raise ValueError(f"cannot use {value}")


class Show(Node):
    """Output node: ui ``{"text": [str(value)]}``."""

    CLASS_TYPE = "Show"
    OUTPUT_NODE = True
    runs: ClassVar[int] = 0

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"value": ["*", {}]}}

    async def execute(self, ctx: NodeContext, *, value: Any, **_: Any) -> NodeOutput:
        Show.runs += 1
        return NodeOutput(ui={"text": [str(value)]})


class Choose(Node):
    """V1 and V3 combos, one long list."""

    CLASS_TYPE = "Choose"
    OUTPUT_NODE = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "v1": [["a", "b"], {}],
                "v3": ["COMBO", {"options": ["x", "y"], "default": "x"}],
                "long": [[f"item{i}" for i in range(25)], {}],
                "ratio": ["FLOAT", {"min": 0.0, "max": 1.0}],
            }
        }

    async def execute(self, ctx: NodeContext, **inputs: Any) -> NodeOutput:
        return NodeOutput(ui={"text": [repr(sorted(inputs.items()))]})


class Checked(Node):
    """A node with its own validation of ``name`` (no range check then)."""

    CLASS_TYPE = "Checked"
    OUTPUT_NODE = True
    VALIDATED_INPUTS = frozenset({"name"})

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"name": [["known"], {}], "count": ["INT", {"max": 3}]}}

    @classmethod
    def validate_inputs(cls, inputs: dict[str, Any], folders: Folders) -> str | None:
        return None if inputs.get("name") in ("known", "also-fine") else f"Invalid name: {inputs.get('name')}"

    async def execute(self, ctx: NodeContext, **inputs: Any) -> NodeOutput:
        return NodeOutput(ui={"text": ["ok"]})


FAKE_NODES: dict[str, type[Node]] = {
    cls.CLASS_TYPE: cls for cls in (Number, Add, Steps, Say, Fail, Show, Choose, Checked)
}
