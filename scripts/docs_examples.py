#!/usr/bin/env python3
"""Generates a Swift package from the ```swift blocks of README.md and docs/*.md.

Each block becomes one file with one function wrapping the block's statements (its top-level
type declarations stay at file scope); the block's own
`import` lines head the file (a block without any gets Foundation, Klife, KlifeTesting, XCTest
and the Integrations adapters with swift-log and swift-service-lifecycle, as a fragment of a
test or an application). The names a fragment continues from
(`client`, `settings`, a `database`) come from scripts/docs-examples/DocsContext.swift.

Markers, an HTML comment on the line right before the fence:
  <!-- not compiled: REASON -->   the block is skipped (keep these rare; give the reason)
  <!-- run: ... -->               the block also runs, against an embedded broker

The examples' "127.0.0.1:9092" becomes the embedded broker's address. main.swift starts a
broker with KlifeTesting's TestCluster and runs the marked blocks in order.

Usage: docs_examples.py ROOT OUTPUT_DIR   (prints one line per block)
"""
import pathlib
import re
import sys

DEFAULT_IMPORTS = ["import Foundation", "import Synchronization", "import Klife", "import KlifeTesting", "import XCTest",
                   "import KlifeLogging", "import KlifeMetrics", "import KlifeServiceLifecycle",
                   "import Logging", "import ServiceLifecycle"]
SKIP = re.compile(r"^<!--\s*not compiled:(.*)-->$")
RUN = re.compile(r"^<!--\s*run:.*-->$")
TYPE_DECLARATION = re.compile(r"^(?:(?:public|final|private|fileprivate|internal)\s+)*"
                              r"(?:class|struct|enum|actor|protocol|extension)\s")


def blocks(path):
    """Yields (line number, lines, marker line) for every ```swift block of a Markdown file."""
    lines = path.read_text().split("\n")
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```swift":
            end = i + 1
            while lines[end].strip() != "```":
                end += 1
            marker = lines[i - 1].strip() if i > 0 else ""
            yield i + 1, lines[i + 1:end], marker
            i = end
        i += 1


def split_declarations(lines):
    """Separates the block's top-level type declarations (a line at column 0 starting a class,
    struct, enum, actor, protocol or extension, up to its closing brace at column 0), which
    stay at file scope where static stored properties and extensions are allowed, from the
    statements, which go into the wrapping function."""
    declarations, statements, inside = [], [], False
    for l in lines:
        if not inside and TYPE_DECLARATION.match(l):
            inside = not l.rstrip().endswith("}")
            declarations.append(l)
        elif inside:
            declarations.append(l)
            inside = not l.startswith("}")
        else:
            statements.append(l)
    return declarations, statements


def swift_file(doc, line, body):
    imports = [l.strip() for l in body if l.startswith("import ")]
    declarations, statements = split_declarations([l for l in body if not l.startswith("import ")])
    text = "\n".join(statements).replace('["127.0.0.1:9092"]', "[docsBootstrap]")
    name = re.sub(r"\W", "_", doc.stem.lower()) + f"_line{line}"
    header = "\n".join(imports or DEFAULT_IMPORTS)
    types = "\n".join(declarations).replace('["127.0.0.1:9092"]', "[docsBootstrap]")
    indented = "\n".join(("    " + l) if l.strip() else "" for l in text.split("\n"))
    return name, (f"{header}\n\n// {doc.as_posix()}, the block at line {line}.\n"
                  f"{types + chr(10) + chr(10) if types else ''}"
                  f"func {name}() async throws {{\n{indented}\n}}\n")


def main():
    root, out = pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(sys.argv[2])
    sources = out / "Sources" / "DocsExamples"
    sources.mkdir(parents=True, exist_ok=True)
    for old in sources.glob("*.swift"):
        old.unlink()
    docs = [root / "README.md"] + sorted((root / "docs").glob("*.md"))
    runs, compiled, skipped = [], 0, 0
    for doc in docs:
        relative = doc.relative_to(root)
        for line, body, marker in blocks(doc):
            if m := SKIP.match(marker):
                reason = m.group(1).strip()
                if not reason:
                    sys.exit(f"{relative}:{line}: a block not compiled needs a reason")
                print(f"skip    {relative}:{line} ({reason})")
                skipped += 1
                continue
            name, text = swift_file(relative, line, body)
            (sources / f"{name}.swift").write_text(text)
            compiled += 1
            if RUN.match(marker):
                runs.append(name)
                print(f"run     {relative}:{line}")
            else:
                print(f"compile {relative}:{line}")
    context = (root / "scripts" / "docs-examples" / "DocsContext.swift").read_text()
    (sources / "DocsContext.swift").write_text(context)
    calls = "\n".join(f'print("running {n}")\ntry await {n}()' for n in runs)
    (sources / "main.swift").write_text(
        "import KlifeTesting\n\n"
        "let cluster = try await TestCluster.start()\n"
        "docsBootstrap = cluster.bootstrapServers[0]\n"
        f"{calls}\n"
        "cluster.stop()\n"
        f'print("ran {len(runs)} documentation example(s) against an embedded broker")\n')
    template = (root / "scripts" / "docs-examples" / "Package.swift.template").read_text()
    (out / "Package.swift").write_text(template.replace("@ROOT@", str(root)))
    print(f"{compiled} blocks compiled, {len(runs)} run, {skipped} skipped")
    if not runs:
        sys.exit("no block is marked to run")


if __name__ == "__main__":
    main()
