# env.sh — source this (after scripts/bootstrap.sh has run) to get:
#   KLIFE_TANSU_BIN  path of the Tansu broker binary
#   KLIFE_PYTHON     the project venv's python (has confluent_kafka)
#   PATH             with /opt/swift/usr/bin prepended when present
# Works from any cwd; sets no shell options.
_klife_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -r "$_klife_root/.klife/tansu-path" ]]; then
  KLIFE_TANSU_BIN="$(cat "$_klife_root/.klife/tansu-path")"
  export KLIFE_TANSU_BIN
fi
export KLIFE_PYTHON="$_klife_root/.venv/bin/python"
if [[ -d /opt/swift/usr/bin && ":$PATH:" != *":/opt/swift/usr/bin:"* ]]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
unset _klife_root
