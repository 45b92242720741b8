#!/usr/bin/env bash
# Run the visitlens edge worker in the foreground (launchd, systemd or a terminal).
#   scripts/run-worker.sh [/path/to/edge.yaml]
# VISITLENS_EDGE_HOME (default ~/visitlens-edge) holds the venv, models, queue and logs.
set -euo pipefail
HOME_DIR="${VISITLENS_EDGE_HOME:-$HOME/visitlens-edge}"
CONFIG="${1:-$HOME_DIR/edge.yaml}"
VENV="$HOME_DIR/venv"
if [[ ! -x "$VENV/bin/visitlens-edge" ]]; then
  echo "error: $VENV has no visitlens-edge; run scripts/mac/setup.zsh first" >&2
  exit 1
fi
if [[ ! -f "$CONFIG" ]]; then
  echo "error: config $CONFIG not found (start from edge/edge.example.yaml)" >&2
  exit 1
fi
cd "$HOME_DIR"
"$VENV/bin/visitlens-edge" check-config --config "$CONFIG" >/dev/null
exec "$VENV/bin/visitlens-edge" run --config "$CONFIG"
