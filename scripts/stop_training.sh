#!/usr/bin/env bash
# Stops the background training run started by scripts/start_training.sh: SIGTERM to the trainer alone
# (it saves a checkpoint and exits; signalling the whole process group would kill its data worker first).
set -euo pipefail
cd "$(dirname "$0")/.."
pid=$(cat runs/TRAINING_PGID)
kill -TERM "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 1; done
echo "training stopped (process $pid)"
