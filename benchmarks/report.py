"""``benchmarks/report.md``: every benchmark's latest tables (``benchmarks/results/*.json``) and plots in one page.

Written by ``python -m benchmarks`` after each run, from what each benchmark last recorded, so a partial run
keeps the other benchmarks' latest figures (each table says when and under what load it was measured).
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import RESULTS

REPORT = Path(__file__).resolve().parent / "report.md"


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(path: Path = REPORT) -> Path:
    parts = ["# Benchmark report", "",
             "Latest table of every benchmark (`make bench`, or `python -m benchmarks NAME`); each says when it was "
             "measured and the machine's load then. Ratios are against baselines run in the same process.", ""]
    for result in sorted(RESULTS.glob("*.json")):
        if "." in result.stem:
            continue
        tables = json.loads(result.read_text())
        if not any(k != "_run" for k in tables):
            continue
        parts += [f"## {result.stem}", ""]
        for title, table in tables.items():
            if title.startswith("_"):
                continue
            parts += [f"### {title}", "", f"_{table['measured']}, {table['load']}_", "",
                      markdown_table(table["header"], table["rows"]), ""]
        plot = RESULTS / f"{result.stem}.png"
        if plot.exists():
            parts += [f"![{result.stem}](results/{plot.name})", ""]
    path.write_text("\n".join(parts))
    return path


if __name__ == "__main__":
    print(write_report())
