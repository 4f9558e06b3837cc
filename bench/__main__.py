"""Run every ``bench/bench_*.py`` (or those named on the command line) and record their results.

`make bench` runs them all, in `ORDER`: the quick ones first, then those sharing the scoring
workload (score, monitor, scale build it once in a common workspace), the demo pipeline last.
Each writes ``bench/results/<name>.json`` and its row of ``latest.md`` and ``latest.json``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import BENCH_DIR

ORDER = ("sql", "lake_write", "ingest", "features", "score", "monitor", "scale", "serve", "onnx", "pipeline")


def available() -> list[str]:
    """Benchmark names, from the ``bench_<name>.py`` files, in `ORDER` (others after, by name)."""
    names = {p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py")}
    return [n for n in ORDER if n in names] + sorted(names - set(ORDER))


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks in turn; exit 1 when any fell short of its target."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    choices = ", ".join(available())
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {choices})")
    parser.add_argument("--quick", action="store_true", help="smaller data, for checking the benchmarks work")
    args = parser.parse_args(argv)
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available())}")
    workspace = Path(tempfile.mkdtemp(prefix="lakeforge-bench-"))
    outcome: dict[str, str] = {}
    try:
        for name in names:
            module = importlib.import_module(f"bench.bench_{name}")
            shared = {"workspace": workspace} if "workspace" in inspect.signature(module.main).parameters else {}
            started = time.perf_counter()
            try:
                passed = bool(module.main(quick=args.quick, **shared))
                outcome[name] = "pass" if passed else "short"
            except Exception as exc:  # one broken benchmark must not hide the others' figures
                outcome[name] = f"error: {type(exc).__name__}: {str(exc)[:300]}"
            print(f"bench {name}: {outcome[name]} ({time.perf_counter() - started:.0f} s)", flush=True)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    print("\n".join(f"  {name:<12} {verdict}" for name, verdict in outcome.items()))
    return 0 if all(v == "pass" for v in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
