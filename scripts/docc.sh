#!/usr/bin/env bash
# docc.sh — the API documentation: one DocC archive per public module, built with the
# toolchain's docc, failing on any warning and on any public symbol without a `///` comment.
#   scripts/docc.sh [MODULE...]      (default: Klife KlifeTesting KlifeProtocol KlifeSecurity)
# Symbol graphs come from `swift package dump-symbol-graph` (the default .build, as
# scripts/test.sh leaves it); no package dependency is added. The guides in docs/ are copied
# into Klife's catalog as articles (its overview links them). Archives: .build-docc/MODULE.doccarchive
# (static hosting layout: open index.html through any static file server).
set -euo pipefail
cd "$(dirname "$0")/.."

modules=("$@")
((${#modules[@]})) || modules=(Klife KlifeTesting KlifeProtocol KlifeSecurity)
docc="${DOCC:-$(dirname "$(readlink -f "$(command -v swift)")")/docc}"
[[ -x "$docc" ]] || docc=/opt/swift/usr/bin/docc
out=.build-docc
rm -rf "$out"
mkdir -p "$out"

echo "==> symbol graphs"
# Written beside the debug build. The command also tries the test modules and fails when they
# were not built (swift build without --build-tests); only the documented modules count here.
graphs="$(dirname "$(swift build --show-bin-path)")/symbolgraph"
rm -rf "$graphs"
swift package dump-symbol-graph --skip-synthesized-members >"$out/dump-symbol-graph.log" 2>&1 || true
for module in "${modules[@]}"; do
  if [[ ! -f "$graphs/$module.symbols.json" ]]; then
    cat "$out/dump-symbol-graph.log"
    echo "==> docc: no symbol graph for $module in $graphs" >&2
    exit 1
  fi
done

failed=0
# Every public symbol needs a doc comment (members that only implement a protocol requirement
# or come from a default implementation carry the documentation of their origin).
python3 - "$graphs" "${modules[@]}" <<'PY' || failed=1
import json, sys
graphs, modules = sys.argv[1], sys.argv[2:]
missing = []
for module in modules:
    graph = json.load(open(f"{graphs}/{module}.symbols.json"))
    for symbol in graph["symbols"]:
        if symbol.get("accessLevel") not in ("public", "open") or symbol.get("docComment"):
            continue
        where = symbol.get("location", {})
        path = where.get("uri", "?").split("/Sources/")[-1]
        line = where.get("position", {}).get("line", 0) + 1
        missing.append(f"Sources/{path}:{line}: {'.'.join(symbol['pathComponents'])} has no documentation")
for entry in missing:
    print(entry)
print(f"==> undocumented public symbols: {len(missing)}")
sys.exit(1 if missing else 0)
PY

for module in "${modules[@]}"; do
  echo "==> docc $module"
  work="$out/work/$module"
  mkdir -p "$work/graphs"
  cp -R "Sources/$module/$module.docc" "$work/$module.docc"
  cp "$graphs/$module.symbols.json" "$work/graphs/"
  if [[ "$module" == Klife ]]; then
    # DocC finds a resource by its file name: the guides' `images/NAME` become `NAME`.
    for guide in docs/*.md; do
      sed 's/](images\//](/g' "$guide" >"$work/$module.docc/$(basename "$guide")"
    done
    if [[ -d docs/images ]]; then cp -R docs/images "$work/$module.docc/Resources"; fi
  fi
  if ! "$docc" convert "$work/$module.docc" \
      --additional-symbol-graph-dir "$work/graphs" \
      --fallback-display-name "$module" --fallback-bundle-identifier "org.klife.$module" \
      --transform-for-static-hosting --hosting-base-path "$module" \
      --warnings-as-errors --output-dir "$out/$module.doccarchive" >"$work/docc.log" 2>&1; then
    cat "$work/docc.log"
    failed=1
  elif grep -q "warning:" "$work/docc.log"; then
    cat "$work/docc.log"
    failed=1
  fi
done
if ((failed)); then echo "==> docc: FAILED"; exit 1; fi
echo "==> docc: ${#modules[@]} archives in $out, no warnings"
