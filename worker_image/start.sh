#!/bin/sh
# The image's start command (tini's child): optionally fetch the profile's models onto the network volume, link
# volume models where custom nodes look for them, then become the worker, which starts and supervises ComfyUI
# (COMFYUI_COMMAND). `exec` keeps the worker the process tini signals: SIGTERM stops it, and it stops ComfyUI.
set -eu

VOLUME_MODELS="${RELAY_VOLUME_MODELS:-/runpod-volume/models}"
BAKED_MODELS="${RELAY_BAKED_MODELS:-/opt/comfyui/models}"

# RELAY_FETCH_MODELS=1: download what the image's profile needs and the volume lacks (sha256-verified, resumable,
# files already there and matching are skipped). A failure stops the start: a worker without its models would
# fail every job.
# RELAY_FETCH_ALLOW_UNVERIFIED=1 also fetches files the lock has no sha256 for (an explicit, logged choice).
if [ "${RELAY_FETCH_MODELS:-0}" = 1 ]; then
    mkdir -p "$VOLUME_MODELS"
    unverified=""
    if [ "${RELAY_FETCH_ALLOW_UNVERIFIED:-0}" = 1 ]; then
        unverified="--allow-unverified"
        echo "start.sh: RELAY_FETCH_ALLOW_UNVERIFIED=1: files without a locked sha256 are fetched unverified" >&2
    fi
    # shellcheck disable=SC2086
    comfy-relay models fetch --lock "$RELAY_LOCK_FILE" --profile "$RELAY_PROFILE" --dest "$VOLUME_MODELS" \
        --no-progress $unverified
fi

# ComfyUI finds volume models through extra_model_paths.yaml; some custom nodes (insightface, pulid) read
# models_dir/<folder> directly, so whatever the volume has and the image lacks is linked in too.
if [ -d "$VOLUME_MODELS" ]; then
    comfy-relay models link --source "$VOLUME_MODELS" --dest "$BAKED_MODELS"
fi

exec python -m handlers.worker
