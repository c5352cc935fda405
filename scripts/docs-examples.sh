#!/usr/bin/env bash
# docs-examples.sh — the Swift examples of README.md and docs/*.md, compiled and run.
#   Extracts every ```swift block (scripts/docs_examples.py; `<!-- not compiled: REASON -->`
#   right before a fence skips a fragment), builds them as one package against this checkout
#   (a path dependency), then runs the blocks marked `<!-- run: ... -->` (the README's example)
#   against an embedded Tansu on a free 127.0.0.1 port.
# Output: .build-docs-examples/package (generated) and .build-docs-examples/scratch.
set -euo pipefail
cd "$(dirname "$0")/.."

work=.build-docs-examples
python3 scripts/docs_examples.py "$PWD" "$work/package"
echo "==> building the documentation's examples"
swift build --package-path "$work/package" --scratch-path "$work/scratch"
echo "==> running the examples marked to run"
"$work/scratch/debug/DocsExamples"
