#!/usr/bin/env bash
# sanitize.sh — the whole test suite under ThreadSanitizer and/or AddressSanitizer.
#
#   scripts/sanitize.sh                 # thread, then address
#   scripts/sanitize.sh thread          # one of them
#   scripts/sanitize.sh address --filter KlifeProtocolTests   # extra arguments go to swift test
#
# Each sanitizer builds into its own folder (.build-tsan, .build-asan) so it never disturbs the
# normal build. A run fails when a test fails or the sanitizer reports anything: a report that
# does not stop the process (TSan's default) is still a failure here. Suppressions live in
# scripts/sanitizers/<name>.supp, one entry per known false positive, each with the reason.
# Logs: .klife/sanitize/<name>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

kinds=()
while (($#)); do
  case "$1" in
    thread|address) kinds+=("$1"); shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
((${#kinds[@]})) || kinds=(thread address)

echo "==> bootstrap"
bash scripts/bootstrap.sh
source scripts/env.sh
mkdir -p .klife/sanitize

status=0
for kind in "${kinds[@]}"; do
  # KLIFE_TSAN turns on the lock annotations of KlifeIO's `Locked` (see Sources/KlifeIO/Locked.swift):
  # Swift's Mutex hands contended locks over in uninstrumented code, invisible to TSan otherwise.
  case "$kind" in
    thread) scratch=.build-tsan; defines=(-Xswiftc -Xcc -Xswiftc -DKLIFE_TSAN -Xcc -DKLIFE_TSAN) ;;
    address) scratch=.build-asan; defines=() ;;
  esac
  log=".klife/sanitize/$kind.log"
  echo "==> [$kind] swift build --build-tests --sanitize=$kind --scratch-path $scratch ${defines[*]}"
  swift build --build-tests --sanitize="$kind" --scratch-path "$scratch" "${defines[@]}"

  supp="$PWD/scripts/sanitizers/$kind.supp"
  # halt_on_error=0 / exitcode: every report is collected, and the run still fails at the end.
  export TSAN_OPTIONS="suppressions=$supp halt_on_error=0 second_deadlock_stack=1 history_size=4 report_signal_unsafe=0 exitcode=66"
  # detect_leaks=0: the Swift runtime keeps metadata caches for the life of the process.
  export ASAN_OPTIONS="detect_leaks=0 halt_on_error=1 abort_on_error=0 detect_stack_use_after_return=0"
  export KLIFE_SANITIZER="$kind"

  echo "==> [$kind] swift test --skip-build --sanitize=$kind --scratch-path $scratch $* (log: $log)"
  rc=0
  swift test --skip-build --sanitize="$kind" --scratch-path "$scratch" "$@" >"$log" 2>&1 || rc=$?
  reports=$(grep -c -E '^WARNING: ThreadSanitizer|^==[0-9]+==ERROR: AddressSanitizer|^SUMMARY: (Thread|Address)Sanitizer' "$log" || true)
  grep -E '^\s*Executed [0-9]+ tests?' "$log" | tail -n 1 || true
  if ((rc != 0 || reports != 0)); then
    echo "==> [$kind] FAILED: exit $rc, $reports sanitizer report line(s); first reports:"
    grep -n -A 12 -E '^WARNING: ThreadSanitizer|ERROR: AddressSanitizer' "$log" | head -n 80 || true
    grep -E ' error: ' "$log" | head -n 20 || true
    status=1
  else
    echo "==> [$kind] clean"
  fi
done
exit "$status"
