"""``python -m benchmarks [NAME ...]``: run every ``benchmarks/bench_*.py`` (or the named ones) in turn."""

from __future__ import annotations

import importlib
import inspect
import sys
import time
import traceback
from pathlib import Path

from benchmarks.common import CURRENT
from benchmarks.report import write_report


def main(argv: list[str]) -> int:
    names = sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))
    chosen = [a for a in argv if a in names] or names
    flags = [a for a in argv if a not in names]
    failed = []
    for name in chosen:
        print(f"\n# benchmark: {name}", flush=True)
        CURRENT.update(benchmark=name, run=time.strftime("%Y-%m-%dT%H:%M:%S"))
        started = time.perf_counter()
        try:
            entry = importlib.import_module(f"benchmarks.bench_{name}").main
            entry(flags) if inspect.signature(entry).parameters else entry()
        except (Exception, SystemExit) as error:  # one broken benchmark must not hide the others' figures
            if isinstance(error, SystemExit) and not error.code:
                continue
            traceback.print_exc()
            failed.append(name)
        print(f"# {name}: {time.perf_counter() - started:.0f}s", flush=True)
    print(f"\nreport: {write_report()}")
    if failed:
        print(f"\nfailed benchmarks: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
