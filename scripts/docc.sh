#!/usr/bin/env bash
# docc.sh — the API documentation: one DocC archive per public module, built with the
# toolchain's docc, failing on any warning and on any public symbol without a `///` comment.
#   scripts/docc.sh
# The library's modules (Klife KlifeTesting KlifeProtocol KlifeSecurity) take their symbol
# graphs from `swift package dump-symbol-graph` on the default .build (as scripts/test.sh leaves
# it); the adapters (KlifeLogging KlifeMetrics KlifeServiceLifecycle) from the Integrations
# package's .build-integrations. No package dependency is added. The guides in docs/ are copied
# into Klife's catalog as articles (its overview links them). Archives:
# .build-docc/MODULE.doccarchive (static hosting layout: serve the folder, open index.html).
set -euo pipefail
cd "$(dirname "$0")/.."

docc="${DOCC:-$(dirname "$(readlink -f "$(command -v swift)")")/docc}"
[[ -x "$docc" ]] || docc=/opt/swift/usr/bin/docc
out=.build-docc
rm -rf "$out"
mkdir -p "$out"
failed=0

# symbol_graphs PACKAGE_DIR SCRATCH MODULE...: dumps the package's symbol graphs and prints
# their folder. The command also tries the test modules and fails when they were not built
# (swift build without --build-tests); only the documented modules must be there.
symbol_graphs() {
  local package=$1 scratch=$2 graphs log
  shift 2
  graphs="$(dirname "$(swift build --package-path "$package" --scratch-path "$scratch" --show-bin-path)")/symbolgraph"
  log="$out/dump-symbol-graph-$(basename "$scratch").log"
  rm -rf "$graphs"
  swift package --package-path "$package" --scratch-path "$scratch" \
    dump-symbol-graph --skip-synthesized-members >"$log" 2>&1 || true
  for module in "$@"; do
    if [[ ! -f "$graphs/$module.symbols.json" ]]; then
      cat "$log" >&2
      echo "==> docc: no symbol graph for $module in $graphs" >&2
      return 1
    fi
  done
  echo "$graphs"
}

# undocumented GRAPHS MODULE...: lists public symbols without a doc comment (members that only
# implement a protocol requirement or come from a default implementation carry their origin's).
undocumented() {
  python3 - "$@" <<'PY'
import glob, json, sys
graphs, modules = sys.argv[1], sys.argv[2:]
missing = []
for module in modules:
    for path in [f"{graphs}/{module}.symbols.json"] + glob.glob(f"{graphs}/{module}@*.symbols.json"):
        for symbol in json.load(open(path))["symbols"]:
            if symbol.get("accessLevel") not in ("public", "open") or symbol.get("docComment"):
                continue
            where = symbol.get("location", {})
            file = where.get("uri", "?").split("/work/")[-1].split("file://")[-1]
            line = where.get("position", {}).get("line", 0) + 1
            missing.append(f"{file}:{line}: {'.'.join(symbol['pathComponents'])} has no documentation")
for entry in missing:
    print(entry)
print(f"==> undocumented public symbols in {', '.join(modules)}: {len(missing)}")
sys.exit(1 if missing else 0)
PY
}

# archive GRAPHS SOURCES MODULE: one module's DocC archive, any warning failing it.
archive() {
  local graphs=$1 sources=$2 module=$3 work="$out/work/$3"
  echo "==> docc $module"
  mkdir -p "$work/graphs"
  cp -R "$sources/$module/$module.docc" "$work/$module.docc"
  cp "$graphs/$module.symbols.json" "$work/graphs/"
  for extension in "$graphs/$module@"*.symbols.json; do
    if [[ -f "$extension" ]]; then cp "$extension" "$work/graphs/"; fi
  done
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
      --warnings-as-errors --output-dir "$out/$module.doccarchive" >"$work/docc.log" 2>&1 \
      || grep -q "warning:" "$work/docc.log"; then
    cat "$work/docc.log"
    failed=1
  fi
}

library=(Klife KlifeTesting KlifeProtocol KlifeSecurity)
adapters=(KlifeLogging KlifeMetrics KlifeServiceLifecycle)

echo "==> symbol graphs"
graphs="$(symbol_graphs . .build "${library[@]}")"
undocumented "$graphs" "${library[@]}" || failed=1
for module in "${library[@]}"; do archive "$graphs" Sources "$module"; done

graphs="$(symbol_graphs Integrations .build-integrations "${adapters[@]}")"
undocumented "$graphs" "${adapters[@]}" || failed=1
for module in "${adapters[@]}"; do archive "$graphs" Integrations/Sources "$module"; done

if ((failed)); then echo "==> docc: FAILED"; exit 1; fi
echo "==> docc: $((${#library[@]} + ${#adapters[@]})) archives in $out, no warnings"
