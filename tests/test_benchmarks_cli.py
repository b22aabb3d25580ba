"""Every benchmark answers ``--help`` with its usage and runs nothing: a benchmark that treated ``--help`` as
"go" once started a 56k-store measurement against a store being written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))

PROBE = """
import importlib, io, sys, contextlib
from unittest import mock
for name in sys.argv[1:]:
    module = importlib.import_module("benchmarks." + name)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), mock.patch.object(sys, "argv", ["x", "--help"]):
        try:
            module.main(["--help"])
            code = "returned"
        except SystemExit as exit:
            code = exit.code
    print(name, code, "usage:" in out.getvalue())
"""


def test_every_benchmark_prints_usage_for_help_without_running():
    assert len(NAMES) >= 13
    out = subprocess.run([sys.executable, "-c", PROBE, *NAMES], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    answers = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines() if line.startswith("bench_")}
    assert set(answers) == set(NAMES)
    assert {name: a for name, a in answers.items() if a != ["0", "True"]} == {}
