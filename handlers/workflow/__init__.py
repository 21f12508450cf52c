"""Pure workflow logic, no I/O (except reading template files from a given root): templates and parameter
binding, graph edits (LoRA chains, sizes, identity references, seed batches), TTS text preparation, UI → API
conversion, validation against an ``/object_info`` catalogue."""

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
from handlers.workflow._dataset import caption_with_trigger
from handlers.workflow._edit_params import (
    EDIT_PARAMS,
    SPEECH_PARAMS,
    GraphEdits,
    LoraParam,
    apply_edits,
    prepare_speech_params,
    split_edit_params,
)
from handlers.workflow._edits import (
    EditError,
    IdentityMethod,
    LoraChoice,
    add_loras,
    attach_references,
    seed_variants,
    set_aspect_ratio,
    set_batch_size,
    set_size,
)
from handlers.workflow._library import (
    WORKFLOWS_ENV,
    LibraryMissingError,
    custom_node_classes,
    default_workflows_dir,
    list_characters,
    require_library,
    with_custom_nodes,
)
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
from handlers.workflow._output_names import OutputNamer, output_name_problems, output_namer
from handlers.workflow._output_prefix import FILENAME_PREFIX, filename_prefix_problems, job_filename_prefix
from handlers.workflow._params import ParamSpec
from handlers.workflow._resolve import resolve_graph, resolve_template
from handlers.workflow._run_graph import prepare_run
from handlers.workflow._sizes import ModelFamily, detect_family, parse_aspect_ratio, size_for, size_multiple
from handlers.workflow._speech import SPEECH_CHUNK_CHARS, chunked_speech, split_speech
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
from handlers.workflow._tts_text import chunk_text, prepare_tts_text, split_sentences
from handlers.workflow._validate import ValidationIssue, ValidationReport, validate
from handlers.workflow._variants import merge_variants, variant_node_id

__all__ = [
    "EDIT_PARAMS",
    "FILENAME_PREFIX",
    "MEDIA_TYPES",
    "RANDOM_SEED_MAX",
    "SEED_INPUTS",
    "SPEECH_CHUNK_CHARS",
    "SPEECH_PARAMS",
    "WORKFLOWS_ENV",
    "Bind",
    "BindingError",
    "BoundWorkflow",
    "Catalogue",
    "CharacterLora",
    "CharacterProfile",
    "CharacterVoice",
    "ConversionError",
    "CustomNode",
    "EditError",
    "GraphEdits",
    "IdentityMethod",
    "InputSpec",
    "LibraryMissingError",
    "LoraChoice",
    "LoraParam",
    "MediaBinding",
    "ModelFamily",
    "ModelFile",
    "NodeClass",
    "OutputNamer",
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
    "add_loras",
    "apply_edits",
    "attach_references",
    "bind",
    "bind_template",
    "caption_with_trigger",
    "chunk_text",
    "chunked_speech",
    "custom_node_classes",
    "default_workflows_dir",
    "detect_family",
    "filename_prefix_problems",
    "find_placeholders",
    "job_filename_prefix",
    "list_characters",
    "list_templates",
    "load_character",
    "load_template",
    "merge_variants",
    "output_name_problems",
    "output_namer",
    "parse_aspect_ratio",
    "prepare_run",
    "prepare_speech_params",
    "prepare_tts_text",
    "require_library",
    "resolve_graph",
    "resolve_template",
    "seed_variants",
    "set_aspect_ratio",
    "set_batch_size",
    "set_size",
    "size_for",
    "size_multiple",
    "split_edit_params",
    "split_sentences",
    "split_speech",
    "ui_to_api",
    "validate",
    "variant_node_id",
    "with_custom_nodes",
]
