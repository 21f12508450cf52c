#!/bin/sh
# The image's start command (tini's child): put network-volume models where ComfyUI and custom nodes look, optionally
# fetch the profile's models onto the volume, then become the worker, which starts and supervises ComfyUI.
set -eu

VOLUME_MODELS="${RELAY_VOLUME_MODELS:-/runpod-volume/models}"

# RELAY_FETCH_MODELS=1: download what the image's profile needs and the volume lacks (sha256-verified, resumable).
if [ "${RELAY_FETCH_MODELS:-0}" = 1 ]; then
    comfy-relay models fetch --lock "$RELAY_LOCK_FILE" --profile "$RELAY_PROFILE" --dest "$VOLUME_MODELS" --no-progress
fi

# Some custom nodes read models_dir/<folder> directly (insightface, pulid), ignoring extra_model_paths.yaml:
# link what the volume has and the image lacks.
if [ -d "$VOLUME_MODELS" ]; then
    comfy-relay models link --source "$VOLUME_MODELS" --dest /opt/comfyui/models
fi

exec python -m handlers.worker
