"""Run every ``bench/bench_*.py`` (or those named on the command line) and record their results."""

from __future__ import annotations

import argparse
import importlib
import sys

from bench.harness import BENCH_DIR


def available() -> list[str]:
    """Benchmark names, from the ``bench_<name>.py`` files."""
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks in turn; exit 1 when any fell short of its target."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    choices = ", ".join(available())
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {choices})")
    parser.add_argument("--quick", action="store_true", help="smaller data, for checking the benchmarks work")
    args = parser.parse_args(argv)
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available())}")
    all_passed = True
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        all_passed &= bool(module.main(quick=args.quick))
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
