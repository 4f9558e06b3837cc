"""Faults: a writing step SIGKILLed at a random moment never leaves a partial or a doubled batch.

Each trial starts one pipeline step of the small project (tests/e2e/project.py, after its full
`dvc repro`) in a process of its own (tests/chaos/step_worker.py: the same ``run_job`` as
`lakeforge run` and the jobs) and SIGKILLs it, JVM included, at a random moment of its run. The
steps are the ones that write: ingest, features, score, the score's export (killed after the
predictions are committed, while the export copies them), and monitor. After every kill the whole
lake is checked: every table reads at a committed version, and holds exactly the rows it held
after the step's first complete run (a run date is the old complete batch or the new one, never
a part, never both); the export folder likewise. After the kills, one more complete run leaves
the same rows, and `lakeforge vacuum` deletes the files the killed runs left behind.

The seed is printed and can be fixed with LAKEFORGE_CHAOS_SEED to replay a failure. `make test`
kills each step LAKEFORGE_CHAOS_KILLS times (default 2: 10 kills, what the suite's 20 minutes
allow); `make chaos` runs 4 of each (20 kills) with the config fuzzer at its full 200 cases.

The tests run from tests/e2e/test_dvc_pipeline.py, which imports them: they share its `dvc repro`
project (`repro_project`), and `make test` gives whole files to its workers.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable

from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta_common import open_table, snapshot_files
from tests.e2e.conftest import REPO_ROOT, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WORKER = Path(__file__).with_name("step_worker.py")
RUN_DATE = "2013-02-04"
EXPORT_DIR = "exports/chaos"
EXPORT = f"model.scoring.exports=[{{format:parquet,path:{EXPORT_DIR},served_only:false}}]"
PREDICTIONS = "predictions.flight_delay"


@dataclass
class Step:
    """One writing step under test: what runs, and when it is killed.

    ``kills`` land at random moments of the run (of its part before ``commit_of`` commits, when
    set); ``late_kills`` at random moments after that commit, with their own name (the score's
    export runs after the predictions are committed).
    """

    name: str
    step: str
    argv: list[str]
    kills: int
    commit_of: str | None = None
    late_kills: int = 0
    late_name: str = ""
    outcomes: dict[str, list[str]] = field(default_factory=dict)


KILLS = int(os.environ.get("LAKEFORGE_CHAOS_KILLS", "2"))

STEPS = (
    Step("ingest", "ingest", ["pipeline.datasets=[flights]"], kills=KILLS),
    Step("features", "features", [f"run_date={RUN_DATE}"], kills=KILLS),
    Step(
        "score",
        "score",
        [f"run_date={RUN_DATE}", EXPORT],
        kills=KILLS,
        commit_of=PREDICTIONS,
        late_kills=KILLS,
        late_name="export",
    ),
    Step("monitor", "monitor", [f"run_date={RUN_DATE}"], kills=KILLS),
)


class StepWorker:
    """A step_worker.py process and its JVM, one process group, its output in a log file."""

    def __init__(self, project: Path, log: Path) -> None:
        self.log = log
        with log.open("ab") as sink:
            self.proc = subprocess.Popen(
                # Tiny data: 2 shuffle partitions instead of 8 spare the two cores some task overhead.
                [sys.executable, str(WORKER), "spark.shuffle_partitions=2"],
                cwd=project,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=sink,
                text=True,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                start_new_session=True,
            )

    def start(self, step: Step) -> float:
        """Wait until the worker's Spark is up, then start ``step``; return when it started."""
        assert self.proc.stdout is not None and self.proc.stdin is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"step worker failed to start: {line!r}; see {self.log}"
        self.proc.stdin.write(json.dumps({"step": step.step, "argv": step.argv}) + "\n")
        self.proc.stdin.flush()
        return time.monotonic()

    def result(self) -> dict[str, Any]:
        """Wait for the step to end; its exit code and seconds."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"step worker exited without a result; see {self.log}"
        self.proc.wait(timeout=60)
        outcome: dict[str, Any] = json.loads(line)
        return outcome

    def kill(self) -> bool:
        """SIGKILL the worker and its JVM; True when the step was still running."""
        running = self.proc.poll() is None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        return running


def _wait_for_commit(lake: Path, table: str | None, before: int, worker: StepWorker) -> float | None:
    """When ``table`` got a version beyond ``before`` (monotonic clock), or None if the step ended first."""
    assert table is not None
    while worker.proc.poll() is None:
        if _versions(lake, table) > before:
            return time.monotonic()
        time.sleep(0.01)
    return None


def _versions(lake: Path, table: str) -> int:
    log_dir = Catalog(lake).table_uri(table) + "/_delta_log"
    return sum(1 for name in os.listdir(log_dir) if name.endswith(".json"))


def lake_state(lake: Path, project: Path) -> dict[str, int]:
    """Rows of every table (read at its latest committed version) and of the export folder.

    Reading every table's files proves each committed file is there and whole; a run date of a
    table with ``job_run_id`` must come from one job run (a mix is a partial replacement).
    """
    catalog = Catalog(lake)
    state: dict[str, int] = {}
    for name in catalog.list_tables():
        table = DeltaTable(catalog.table_uri(name)).to_pyarrow_table()
        state[str(name)] = table.num_rows
        if {"run_date", "job_run_id"} <= set(table.column_names) and table.num_rows:
            runs = table.group_by("run_date").aggregate([("job_run_id", "count_distinct")])
            mixed = pc.greater(runs["job_run_id_count_distinct"], 1)
            assert not pc.any(mixed).as_py(), f"{name}: a run date holds rows of two job runs: {runs.to_pylist()}"
    export = project / EXPORT_DIR
    if export.is_dir():
        state["export"] = ds.dataset(export, format="parquet", partitioning="hive").count_rows()
    return state


def _judge(initial: dict[str, int], states: list[dict[str, int]], final: dict[str, int]) -> list[str]:
    """What is wrong with the rows of each table over one step's trials, if anything.

    ``states``: after the first complete run, then after each kill; ``final``: after the complete
    run that follows the kills. A table the step replaces (a run date, a partition) holds after
    every kill the rows of one complete run: the first's or the final's (they differ only where
    a run's output depends on the time it ran, e.g. lateness alerts). A table the step appends to
    (one batch per run, e.g. feature statistics; the final run added ``batch`` rows, as the first
    did) grows by a whole batch or not at all.
    """
    problems = []
    last = states[-1]
    for table in sorted(set(final) | set(last)):
        counts = [state.get(table) for state in states]
        batch = final.get(table, 0) - (last.get(table) or 0)
        appends = batch > 0 and states[0].get(table, 0) - initial.get(table, 0) == batch
        if appends:
            steps = {b - a for a, b in itertools.pairwise(counts) if a is not None and b is not None}
            if not steps <= {0, batch}:
                problems.append(f"{table} grew by {sorted(steps)} rows in a kill, not by 0 or {batch}: {counts}")
        elif not set(counts) <= {states[0].get(table), final.get(table)}:
            problems.append(
                f"{table} held {counts} rows after the first run and the kills, not {states[0].get(table)} (first "
                f"complete run) or {final.get(table)} (the run after the kills)"
            )
    return problems


def _unreferenced(lake: Path) -> int:
    """Data files under the table folders that the latest version of their table does not use."""
    catalog = Catalog(lake)
    count = 0
    for name in catalog.list_tables():
        root = Path(catalog.table_uri(name))
        used = {entry.path for entry in snapshot_files(open_table(catalog, name))}
        files = [p for p in root.rglob("*.parquet") if "_delta_log" not in p.parts]
        count += sum(1 for p in files if p.relative_to(root).as_posix() not in used)
    return count


@pytest.fixture(scope="module")
def chaos_project(repro_project: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repro project: the kills must not disturb the DVC tests' project."""
    source, _ = repro_project
    target = tmp_path_factory.mktemp("chaos") / "project"
    shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns("cache", "tmp"))
    return target


# Eight complete runs and the kills: five minutes on a quiet machine, more when two workers share it.
@pytest.mark.timeout(1500)
def test_sigkill_of_every_writing_step_at_random_moments_loses_and_doubles_nothing(
    chaos_project: Path, tmp_path: Path
) -> None:
    project, lake = chaos_project, chaos_project / "lake"
    seed = int(os.environ.get("LAKEFORGE_CHAOS_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"chaos seed {seed} (LAKEFORGE_CHAOS_SEED={seed} replays it)")
    log = tmp_path / "workers.log"
    upcoming = StepWorker(project, log)
    killed_mid_run = 0
    for step in STEPS:
        # A first complete run, then the kills, then a complete run again; each worker warms up
        # while the previous one runs.
        worker, upcoming = upcoming, StepWorker(project, log)
        initial = lake_state(lake, project)
        before = _versions(lake, step.commit_of) if step.commit_of else 0
        started = worker.start(step)
        committed = _wait_for_commit(lake, step.commit_of, before, worker) if step.commit_of else None
        first = worker.result()
        assert first["rc"] == 0, f"{step.name}: the first complete run failed; see {log}"
        duration = first["seconds"]
        committed_after = None if committed is None else committed - started
        states = [lake_state(lake, project)]
        kinds = [step.name] * step.kills + [step.late_name] * step.late_kills
        for kind in kinds:
            worker, upcoming = upcoming, StepWorker(project, log)
            before = _versions(lake, step.commit_of) if step.commit_of else 0
            started = worker.start(step)
            if kind == step.late_name:  # after the commit, while the rest of the step runs
                assert committed_after is not None, f"{step.name}: never saw {step.commit_of} commit"
                _wait_for_commit(lake, step.commit_of, before, worker)
                moment = rng.uniform(0, max(duration - committed_after, 0.05))
            else:
                moment = rng.uniform(0, committed_after or duration)
            time.sleep(moment)
            running = worker.kill()
            killed_mid_run += running
            step.outcomes.setdefault(kind, []).append(f"{moment:.2f}s{'' if running else ' (had ended)'}")
            states.append(lake_state(lake, project))  # reads every table: each is at a committed version
        worker, upcoming = upcoming, StepWorker(project, log)
        worker.start(step)
        assert worker.result()["rc"] == 0, f"{step.name}: the run after the kills failed; see {log}"
        problems = _judge(initial, states, lake_state(lake, project))
        assert not problems, f"{step.name} (seed {seed}, kills at {step.outcomes}): " + "; ".join(problems)
    upcoming.kill()
    outcomes = {kind: moments for step in STEPS for kind, moments in step.outcomes.items()}
    trials = sum(len(moments) for moments in outcomes.values())
    print(f"{trials} kills ({killed_mid_run} mid-run):", outcomes)
    assert trials == 5 * KILLS and set(outcomes) == {"ingest", "features", "score", "export", "monitor"}
    assert killed_mid_run >= (trials + 1) // 2, "most kills should land while the step runs"

    # Files of the killed runs (and of replaced versions) go with `lakeforge vacuum`, rows stay.
    left_behind = _unreferenced(lake)
    assert left_behind > 0
    before_vacuum = lake_state(lake, project)
    run_cli(["vacuum", "--retention-hours", "0"], cwd=project, check=True)
    assert _unreferenced(lake) == 0
    assert lake_state(lake, project) == before_vacuum
    staging = project / EXPORT_DIR / "_staging"
    assert not staging.exists() or not any(staging.iterdir()), "the last export cleaned up after the killed ones"


def _rows_by_date(lake: Path, table: str) -> dict[str, tuple[int, int]]:
    """run_date -> (rows, job runs) of a table."""
    data = DeltaTable(Catalog(lake).table_uri(table)).to_pyarrow_table(columns=["run_date", "job_run_id"])
    grouped = data.group_by("run_date").aggregate([("job_run_id", "count"), ("job_run_id", "count_distinct")])
    return {
        str(row["run_date"]): (row["job_run_id_count"], row["job_run_id_count_distinct"]) for row in grouped.to_pylist()
    }


def test_a_backfill_and_the_daily_run_scoring_at_once_lose_nothing_and_double_nothing(
    chaos_project: Path, tmp_path: Path
) -> None:
    """Two schedules score overlapping dates into one table at the same moment.

    Either both commits land (the second is rebased on the first when they touched different
    partitions), or the loser of a true conflict stops with a retryable error (exit 75, which
    Airflow retries: tests/e2e/test_airflow_dags.py) and its retry lands. Either way each date
    ends with one copy of its rows, from one job run.
    """
    project, lake = chaos_project, chaos_project / "lake"
    runs = {
        "backfill": Step("backfill", "score", ["start_date=2013-02-02", "end_date=2013-02-04"], kills=0),
        "daily": Step("daily", "score", [f"run_date={RUN_DATE}"], kills=0),
    }
    before = _rows_by_date(lake, PREDICTIONS)
    assert set(before) >= {"2013-02-02", "2013-02-03", RUN_DATE}
    logs = {name: tmp_path / f"{name}.log" for name in runs}
    workers = {name: StepWorker(project, logs[name]) for name in runs}
    for name, worker in workers.items():  # both warm first, then started back to back
        assert worker.proc.stdout is not None
        assert worker.proc.stdout.readline().strip() == "ready", f"{name} worker failed; see {logs[name]}"
    for name, worker in workers.items():
        assert worker.proc.stdin is not None
        worker.proc.stdin.write(json.dumps({"step": "score", "argv": runs[name].argv}) + "\n")
        worker.proc.stdin.flush()
    codes = {name: worker.result()["rc"] for name, worker in workers.items()}
    assert set(codes.values()) <= {0, 75}, f"{codes}; see {logs}"
    for name, code in codes.items():
        if code == 75:  # what Airflow does with exit 75: run the task again
            last = logs[name].read_text().strip().splitlines()[-1]
            assert "score: retryable error: table 'predictions.flight_delay'" in last, last
            assert "another writer committed a conflicting change first" in last, last
            retry = StepWorker(project, logs[name])
            retry.start(runs[name])
            assert retry.result()["rc"] == 0, f"the retry of {name} failed; see {logs[name]}"
    print("concurrent score runs exited", codes)
    after = _rows_by_date(lake, PREDICTIONS)
    for day, (rows, _) in before.items():
        assert after[day] == (rows, 1), f"{day}: {after[day]} (rows, job runs), expected ({rows}, 1)"
