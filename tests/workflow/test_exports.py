"""``handlers.workflow``'s public surface is pinned: adding or removing a name is a deliberate change to this list."""

from __future__ import annotations

from handlers import workflow as package

EXPECTED = [
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


def test_all_is_pinned() -> None:
    assert package.__all__ == EXPECTED


def test_every_exported_name_exists_and_is_defined_in_the_package() -> None:
    for name in package.__all__:
        member = getattr(package, name)
        module = getattr(member, "__module__", None)
        if module is not None and isinstance(member, type):
            assert module.startswith("handlers.workflow."), (name, module)
