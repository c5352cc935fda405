#!/usr/bin/env python3
"""Checks scripts/docs_examples.py on a made-up documentation tree: which blocks it compiles,
skips and runs, how it wraps them, and that a skip needs a reason. Run by docs-examples.sh."""
import pathlib
import subprocess
import sys
import tempfile
import unittest

SCRIPTS = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(SCRIPTS))
import docs_examples  # noqa: E402

README = """# A library

<!-- run: runs against an embedded broker -->
```swift
import Klife

let client = try await KlifeClient.connect(KlifeConfiguration(bootstrapServers: ["127.0.0.1:9092"]))
```

```sh
echo not swift
```

<!-- not compiled: a fragment -->
```swift
txn.produce(record)
```

```swift
settings.maxRecords = 10
```
"""


class ExtractionTests(unittest.TestCase):
    def generate(self, readme):
        root = pathlib.Path(tempfile.mkdtemp())
        (root / "docs").mkdir()
        (root / "README.md").write_text(readme)
        (root / "scripts" / "docs-examples").mkdir(parents=True)
        for name in ("DocsContext.swift", "Package.swift.template"):
            (root / "scripts" / "docs-examples" / name).write_text((SCRIPTS / "docs-examples" / name).read_text())
        out = root / "out"
        result = subprocess.run([sys.executable, str(SCRIPTS / "docs_examples.py"), str(root), str(out)],
                                capture_output=True, text=True)
        return result, out / "Sources" / "DocsExamples"

    def test_blocks_are_compiled_skipped_with_a_reason_and_run_when_marked(self):
        result, sources = self.generate(README)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("run     README.md:4", result.stdout)
        self.assertIn("skip    README.md:15 (a fragment)", result.stdout)
        self.assertIn("compile README.md:19", result.stdout)
        self.assertIn("2 blocks compiled, 1 run, 1 skipped", result.stdout)
        self.assertEqual(sorted(p.name for p in sources.glob("readme_*.swift")),
                         ["readme_line19.swift", "readme_line4.swift"])
        self.assertIn("try await readme_line4()", (sources / "main.swift").read_text())

    def test_a_block_keeps_its_own_imports_and_gets_the_broker_address(self):
        _, sources = self.generate(README)
        text = (sources / "readme_line4.swift").read_text()
        self.assertTrue(text.startswith("import Klife\n\n"))
        self.assertIn("func readme_line4() async throws {", text)
        self.assertIn("bootstrapServers: [docsBootstrap]", text)
        fragment = (sources / "readme_line19.swift").read_text()
        for module in ("Klife", "KlifeTesting", "XCTest"):
            self.assertIn(f"import {module}\n", fragment)

    def test_type_declarations_stay_at_file_scope(self):
        readme = README + """
```swift
final class Deliveries: Sendable {
    static let shared = Deliveries()
}
struct Empty {}
let deliveries = Deliveries.shared
```
"""
        _, sources = self.generate(readme)
        text = (sources / "readme_line23.swift").read_text()
        self.assertIn("final class Deliveries: Sendable {\n    static let shared = Deliveries()\n}\nstruct Empty {}\n", text)
        self.assertIn("func readme_line23() async throws {\n    let deliveries = Deliveries.shared\n}", text)

    def test_a_skip_without_a_reason_fails(self):
        result, _ = self.generate(README.replace("<!-- not compiled: a fragment -->", "<!-- not compiled: -->"))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("README.md:15: a block not compiled needs a reason", result.stderr)

    def test_documentation_without_a_block_to_run_fails(self):
        result, _ = self.generate("```swift\nlet x = 1\n```\n")
        self.assertNotEqual(result.returncode, 0)


if __name__ == "__main__":
    unittest.main()
