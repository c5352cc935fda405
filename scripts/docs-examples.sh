#!/usr/bin/env bash
# docs-examples.sh — the Swift examples of README.md and docs/*.md, compiled and run.
#   Extracts every ```swift block (scripts/docs_examples.py; `<!-- not compiled: REASON -->`
#   right before a fence skips a fragment), builds them as one package against this checkout
#   and its Integrations package (path dependencies), then runs the blocks marked `<!-- run: ... -->` (the README's example)
#   against an embedded Tansu on a free 127.0.0.1 port.
# Output: .build-docs-examples/package (generated) and .build-docs-examples/scratch. The scratch
# path is its own: SwiftPM keeps one build description per scratch path, and another root
# package's build in the same one leaves changes in the library unseen.
set -euo pipefail
cd "$(dirname "$0")/.."

work=.build-docs-examples
# The extraction's own tests first (a made-up README: compile, skip with a reason, run).
checks="$(python3 scripts/docs-examples/test_extraction.py 2>&1)" || { echo "$checks"; exit 1; }
python3 scripts/docs_examples.py "$PWD" "$work/package"
echo "==> building the documentation's examples"
scratch="$work/scratch"
swift build --package-path "$work/package" --scratch-path "$scratch"
echo "==> running the examples marked to run"
"$scratch/debug/DocsExamples"
