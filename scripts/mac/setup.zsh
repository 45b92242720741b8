#!/bin/zsh
# Set up the visitlens edge worker on a store's Mac Mini (Apple silicon or Intel, macOS 13+).
#   scripts/mac/setup.zsh            # from a checkout of the repository
# Installs Python 3.11 (Homebrew), a venv with visitlens[edge], the prepared models, an example
# config and a launchd agent that starts the worker at login and restarts it if it exits.
set -euo pipefail
REPO="${0:A:h:h:h}"
HOME_DIR="${VISITLENS_EDGE_HOME:-$HOME/visitlens-edge}"
LABEL="dev.visitlens.edge"
PLIST="$HOME/Library/LaunchAgents/$LABEL.plist"

command -v brew >/dev/null || { echo "Homebrew is needed: https://brew.sh" >&2; exit 1; }
brew list python@3.11 >/dev/null 2>&1 || brew install python@3.11
PY="$(brew --prefix python@3.11)/bin/python3.11"

mkdir -p "$HOME_DIR"/{logs,queue,models}
chmod 700 "$HOME_DIR"
[[ -d "$HOME_DIR/venv" ]] || "$PY" -m venv "$HOME_DIR/venv"
"$HOME_DIR/venv/bin/pip" install --quiet --upgrade pip
"$HOME_DIR/venv/bin/pip" install --quiet -c "$REPO/constraints.txt" "$REPO[edge]"
# onnxruntime's CoreML provider is used when models.providers lists it (see edge.example.yaml).
"$HOME_DIR/venv/bin/python" -c "from visitlens.adapters.model_prep import prepare; from pathlib import Path; prepare(Path('$HOME_DIR/models'))"

if [[ ! -f "$HOME_DIR/edge.yaml" ]]; then
  sed -e "s#var/models#$HOME_DIR/models#" -e "s#var/edge#$HOME_DIR/queue#" \
      -e "s#var/logs#$HOME_DIR/logs#" "$REPO/edge/edge.example.yaml" > "$HOME_DIR/edge.yaml"
  chmod 600 "$HOME_DIR/edge.yaml"
  echo "edit $HOME_DIR/edge.yaml (tenant, site, cameras, API) and put the API key in $HOME_DIR/api-key"
fi
cp "$REPO/scripts/run-worker.sh" "$HOME_DIR/run-worker.sh"
sed -e "s#__HOME_DIR__#$HOME_DIR#g" "$REPO/edge/deploy/dev.visitlens.edge.plist" > "$PLIST"
launchctl bootout "gui/$(id -u)/$LABEL" 2>/dev/null || true
launchctl bootstrap "gui/$(id -u)" "$PLIST"
echo "installed: launchctl print gui/$(id -u)/$LABEL; health: curl http://127.0.0.1:9108/healthz"
