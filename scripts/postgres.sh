#!/usr/bin/env bash
# postgres.sh — a throwaway PostgreSQL for demos and tests, on 127.0.0.1 only.
#
#   bash scripts/postgres.sh start [--port N] [--state FILE]   start one, print its port and URL
#   bash scripts/postgres.sh stop  [--state FILE]              stop it and delete its data
#   bash scripts/postgres.sh status [--state FILE]             print its URL if it runs
#   bash scripts/postgres.sh run   [--port N] [--state FILE]   start, stay in the foreground,
#                                                             stop and delete on exit (Ctrl-C)
#
# Installs Debian's `postgresql` package when its binaries are missing (apt-get, non-interactive;
# root or password-less sudo). Each start is a new cluster: `initdb` into a fresh directory made
# by mktemp, trust authentication (for local tests only), listening on 127.0.0.1 and on a Unix
# socket inside that directory, on a free port unless --port says which. PostgreSQL refuses to
# run as root, so as root the server runs as the `postgres` user (created by the Debian package).
#
# `start` prints three lines on stdout:
#   PGPORT=54321
#   PGDATA=/tmp/klife-pg.XXXXXX/data
#   PGURL=postgresql://postgres@127.0.0.1:54321/postgres
# and writes them to the state file (default .klife/postgres.env), which `stop` reads. Progress
# goes to stderr. The server's log is $PGDATA/../server.log.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian 12's PostgreSQL is 15; without PG_VERSION the newest installed version is used.
newest_version() { ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1; }
PG_VERSION="${PG_VERSION:-$(newest_version)}"
PG_VERSION="${PG_VERSION:-15}"
BIN="/usr/lib/postgresql/$PG_VERSION/bin"

log() { echo "[postgres] $*" >&2; }

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

cmd="${1:-}"; [[ -n "$cmd" ]] || usage; shift
port=""
state=".klife/postgres.env"
while (($#)); do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --state) state="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) log "unknown argument: $1"; usage ;;
  esac
done

# Run a command as the server's user: `postgres` when we are root, ourselves otherwise.
as_server_user() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

install_if_missing() {
  [[ -x "$BIN/initdb" && -x "$BIN/pg_ctl" ]] && return 0
  log "installing Debian's postgresql (binaries missing under $BIN)"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  local out
  if ! out="$($sudo apt-get update 2>&1 </dev/null)"; then echo "$out" >&2; exit 1; fi
  if ! out="$($sudo apt-get install -y --no-install-recommends postgresql 2>&1 </dev/null)"; then
    echo "$out" >&2; exit 1
  fi
  if [[ ! -x "$BIN/initdb" ]]; then
    PG_VERSION="$(newest_version)"
    BIN="/usr/lib/postgresql/$PG_VERSION/bin"
  fi
  [[ -x "$BIN/initdb" ]] || { log "no initdb under /usr/lib/postgresql after installing postgresql"; exit 1; }
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  install_if_missing
  if [[ -r "$state" ]]; then
    # shellcheck disable=SC1090
    local old_data; old_data="$(sed -n 's/^PGDATA=//p' "$state")"
    if [[ -n "$old_data" && -f "$old_data/postmaster.pid" ]]; then
      log "a server from $state is still running ($old_data); run 'stop --state $state' first"
      exit 1
    fi
  fi
  [[ -n "$port" ]] || port="$(free_port)"
  local base; base="$(mktemp -d "${TMPDIR:-/tmp}/klife-pg.XXXXXX")"
  local data="$base/data"
  chmod 755 "$base"
  if [[ $(id -u) -eq 0 ]]; then chown postgres: "$base"; fi
  local out
  if ! out="$(as_server_user "$BIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync 2>&1)"; then
    echo "$out" >&2; rm -rf "$base"; log "initdb failed"; exit 1
  fi
  # Throwaway: no durability needed, loopback only, the socket inside the cluster's directory.
  cat >> "$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$base'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
EOF
  if ! out="$(as_server_user "$BIN/pg_ctl" -D "$data" -l "$base/server.log" -w -t 30 start 2>&1)"; then
    echo "$out" >&2; cat "$base/server.log" >&2 2>/dev/null || true
    rm -rf "$base"; log "pg_ctl start failed"; exit 1
  fi
  mkdir -p "$(dirname "$state")"
  {
    echo "PGPORT=$port"
    echo "PGDATA=$data"
    echo "PGURL=postgresql://postgres@127.0.0.1:$port/postgres"
  } | tee "$state"
  log "PostgreSQL $PG_VERSION on 127.0.0.1:$port (data $data, log $base/server.log)"
}

stop() {
  [[ -r "$state" ]] || { log "no state file $state: nothing to stop"; return 0; }
  local data; data="$(sed -n 's/^PGDATA=//p' "$state")"
  if [[ -n "$data" && -f "$data/postmaster.pid" ]]; then
    as_server_user "$BIN/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 \
      || as_server_user "$BIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    log "stopped the server of $data"
  fi
  # Only ever delete a directory this script made.
  if [[ -n "$data" && "$(basename "$(dirname "$data")")" == klife-pg.* ]]; then
    rm -rf "$(dirname "$data")"
  fi
  rm -f "$state"
}

status() {
  [[ -r "$state" ]] || { log "not running (no $state)"; exit 1; }
  local data; data="$(sed -n 's/^PGDATA=//p' "$state")"
  if [[ -f "$data/postmaster.pid" ]] && as_server_user "$BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    cat "$state"
  else
    log "not running ($data)"; exit 1
  fi
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  run)
    trap stop EXIT
    trap 'exit 130' INT TERM
    start
    log "running; Ctrl-C stops it and deletes its data"
    while [[ -f "$(sed -n 's/^PGDATA=//p' "$state")/postmaster.pid" ]]; do sleep 1; done
    ;;
  *) usage ;;
esac
