#!/usr/bin/env bash
# Copies a run's checkpoint and logs into training/NAME/ so they can be committed and resumed in a later session:
#   bash scripts/snapshot_run.sh runs/qfnet-v1     ->  training/qfnet-v1/{checkpoint.pt,log.csv,val.csv,command.txt}
# To resume there: mkdir -p runs/NAME && cp training/NAME/* runs/NAME/ && bash scripts/start_training.sh runs/NAME ...
# command.txt lists every train command of the run (jpegtrace train appends each one with its start step).
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?run dir}
dest=training/$(basename "$run")
mkdir -p "$dest"
for f in checkpoint.pt log.csv val.csv command.txt; do
  [ -f "$run/$f" ] && cp "$run/$f" "$dest/$f.tmp" && mv "$dest/$f.tmp" "$dest/$f"
done
echo "snapshot of $run in $dest"
