#!/usr/bin/env bash
# Starts (or resumes) the shipped model's training run in the background, in its own process group.
# Usage: bash scripts/start_training.sh RUN_DIR [extra jpegtrace train options]
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?run dir}; shift
mkdir -p "$run"
resume=""; [ -f "$run/checkpoint.pt" ] && resume="--resume"
setsid .venv/bin/jpegtrace train --data ../shared/data/clean --split ../shared/data/clean/split.csv --out "$run" $resume "$@" \
  >> "$run/train.out" 2>&1 < /dev/null &
pid=$!
mkdir -p runs && echo "$pid" > runs/TRAINING_PGID
echo "training started in $run (process group $pid)"
