#!/usr/bin/env bash
# Starts (or resumes) a training run in the background, in its own process group, logging to RUN_DIR/train.out.
# Usage: bash scripts/start_training.sh CONFIG.toml RUN_DIR [--set key=value ...]
# A run folder that holds a checkpoint is resumed with its saved settings (and any --set on top).
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:?config file}; run=${2:?run dir}; shift 2
mkdir -p "$run"
if [ -f "$run/checkpoint.pt" ]; then how=(--resume); else how=(--config "$config"); fi
setsid .venv/bin/jpegtrace train "${how[@]}" --out "$run" "$@" >> "$run/train.out" 2>&1 < /dev/null &
pid=$!
mkdir -p runs && echo "$pid" > runs/TRAINING_PGID
echo "training started in $run (process group $pid)"
