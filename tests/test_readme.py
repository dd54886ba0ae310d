"""Every Python snippet in README.md runs as written, from the repository root."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from testkit import ROOT

SNIPPETS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_snippets():
    assert len(SNIPPETS) >= 5


@pytest.mark.slow  # each snippet in a fresh interpreter, models loaded from scratch
@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_snippet_runs(index):
    out = subprocess.run([sys.executable, "-c", SNIPPETS[index]], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, f"snippet {index} failed:\n{SNIPPETS[index]}\n{out.stderr[-3000:]}"
    assert out.stdout.strip() or "assert" in SNIPPETS[index], f"snippet {index} printed nothing"
