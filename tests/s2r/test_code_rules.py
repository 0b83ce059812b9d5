"""Repository rules a reviewer would otherwise have to catch: measured figures live in BENCHMARKS.md, never in
code comments or docstrings, where they go stale (a comment points to the BENCHMARKS.md section instead)."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sim", "domain_rand", "policies", "deploy", "firmware_bridge", "s2r")
# what a benchmark result looks like in prose: a timing in µs, an "Nx faster", a rate, a load average
FIGURE = re.compile(
    r"\d+(?:\.\d+)?\s?(?:µs|us)\b|\d+(?:\.\d+)?\s?[x×]\s+(?:faster|slower|cheaper)\b|\bsteps/s\b|\bload average\b"
    r"|\(measured\)",
    re.IGNORECASE,
)


def _comments_and_docstrings(source: str):
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT or (
            tok.type == tokenize.STRING and tok.string.lstrip("rbuRBU").startswith(('"""', "'''"))
        ):
            yield tok.start[0], tok.string


def test_no_benchmark_figures_in_code_comments_or_docstrings():
    found = [
        f"{path.relative_to(ROOT)}:{line}: {match.group(0)!r}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, text in _comments_and_docstrings(path.read_text(encoding="utf-8"))
        for match in FIGURE.finditer(text)
    ]
    assert not found, "measured figures belong in BENCHMARKS.md (leave a pointer): " + "; ".join(found)
