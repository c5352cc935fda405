#!/usr/bin/env bash
# docs-examples.sh — the Swift examples of README.md and docs/*.md, compiled and run.
#   Extracts every ```swift block (scripts/docs_examples.py; `<!-- not compiled: REASON -->`
#   right before a fence skips a fragment), builds them as one package against this checkout
#   and its Integrations package (path dependencies), then runs the blocks marked `<!-- run: ... -->` (the README's example)
#   against an embedded Tansu on a free 127.0.0.1 port.
# Output: .build-docs-examples/package (generated). The build shares the Integrations package's
# scratch path (.build-integrations, or $KLIFE_DOCS_SCRATCH): both compile the library the same
# way, so scripts/test.sh builds it once for the two.
set -euo pipefail
cd "$(dirname "$0")/.."

work=.build-docs-examples
python3 scripts/docs_examples.py "$PWD" "$work/package"
echo "==> building the documentation's examples"
scratch="${KLIFE_DOCS_SCRATCH:-.build-integrations}"
swift build --package-path "$work/package" --scratch-path "$scratch"
echo "==> running the examples marked to run"
"$scratch/debug/DocsExamples"
