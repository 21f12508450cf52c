"""Pure workflow logic, no I/O (except reading template files from a given root): templates and parameter
binding, UI → API conversion, validation against an ``/object_info`` catalogue."""

from handlers.workflow._binding import (
    RANDOM_SEED_MAX,
    SEED_INPUTS,
    BindingError,
    BoundWorkflow,
    MediaBinding,
    bind,
    bind_template,
)
from handlers.workflow._catalogue import Catalogue, InputSpec, NodeClass
from handlers.workflow._convert import ConversionError, ui_to_api
from handlers.workflow._manifest import (
    MEDIA_TYPES,
    Bind,
    CharacterLora,
    CharacterProfile,
    CharacterVoice,
    CustomNode,
    ModelFile,
    ParamType,
    TemplateManifest,
    TemplateParam,
)
from handlers.workflow._params import ParamSpec
from handlers.workflow._templates import (
    Template,
    TemplateError,
    TemplateInvalidError,
    TemplateNotFoundError,
    find_placeholders,
    list_templates,
    load_character,
    load_template,
)
from handlers.workflow._validate import ValidationIssue, ValidationReport, validate

__all__ = [
    "MEDIA_TYPES",
    "RANDOM_SEED_MAX",
    "SEED_INPUTS",
    "Bind",
    "BindingError",
    "BoundWorkflow",
    "Catalogue",
    "CharacterLora",
    "CharacterProfile",
    "CharacterVoice",
    "ConversionError",
    "CustomNode",
    "InputSpec",
    "MediaBinding",
    "ModelFile",
    "NodeClass",
    "ParamSpec",
    "ParamType",
    "Template",
    "TemplateError",
    "TemplateInvalidError",
    "TemplateManifest",
    "TemplateNotFoundError",
    "TemplateParam",
    "ValidationIssue",
    "ValidationReport",
    "bind",
    "bind_template",
    "find_placeholders",
    "list_templates",
    "load_character",
    "load_template",
    "ui_to_api",
    "validate",
]
