"""The schedules Airflow runs, read from conf/ without Hydra, Spark or MLflow (fast enough for
Airflow's DAG parsing, which repeats every few minutes).

Each ``conf/pipeline/<pipeline>.yaml`` names its schedules in its defaults list
(``- /schedule@schedule.<name>: <file>``); each ``conf/schedule/<file>.yaml`` is merged onto
`ScheduleConfig` and its values checked as ``lakeforge check`` checks them. A schedule that fails
comes back as a `ConfigError` naming its file, and the other schedules still stand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lakeforge.config.crossref_ml import check_schedules
from lakeforge.config.schema_ml import ScheduleConfig
from lakeforge.config.values import parse_date, parse_duration
from lakeforge.errors import ConfigError, ConfigErrors

_SCHEDULE_KEY = "/schedule@schedule."


@dataclass(frozen=True)
class Schedule:
    """One schedule of one pipeline, checked."""

    pipeline: str
    name: str
    file: Path
    cron: str | None
    start_date: date
    end_date: date | None
    catchup: bool
    retries: int
    retry_delay: timedelta
    execution_timeout: timedelta
    max_active_runs: int
    owner: str
    tags: tuple[str, ...]
    steps: tuple[str, ...]

    @property
    def dag_id(self) -> str:
        return f"{self.pipeline}__{self.name}"


def _schedule_files(pipeline_file: Path) -> list[tuple[str, str]]:
    """(schedule name, file name) from a pipeline's defaults list."""
    loaded = OmegaConf.to_container(OmegaConf.load(pipeline_file))
    entries = loaded.get("defaults") or [] if isinstance(loaded, dict) else []
    found = []
    for entry in entries:
        if isinstance(entry, dict):
            for key, value in entry.items():
                if str(key).startswith(_SCHEDULE_KEY):
                    found.append((str(key)[len(_SCHEDULE_KEY) :], str(value)))
    return found


def _checked(pipeline: str, name: str, file: Path, project: Path) -> Schedule:
    """One schedule file merged onto its schema and checked as ``lakeforge check`` checks it
    (`check_schedules`); a ConfigError naming the file otherwise."""
    shown = str(file.relative_to(project)) if file.is_relative_to(project) else str(file)
    if not file.is_file():
        raise ConfigError(f"pipeline '{pipeline}' names schedule file '{file.name}', which does not exist", file=shown)
    try:
        raw = OmegaConf.to_container(OmegaConf.load(file))
        if not isinstance(raw, dict):
            raise ConfigError("a schedule file must be a mapping of fields", file=shown)
        data = {str(k): v for k, v in raw.items() if k != "defaults"}
        cfg = OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(ScheduleConfig), data), throw_on_missing=True)
    except ConfigError:
        raise
    except (OmegaConfBaseException, ValueError, TypeError) as exc:
        detail = str(exc).splitlines()[0]
        key = getattr(exc, "full_key", None) or None
        raise ConfigError(f"not a valid schedule: {detail}", file=shown, key=key) from None
    assert isinstance(cfg, dict)
    problems: list[ConfigError] = []
    check_schedules(
        {"schedule": {name: cfg}}, lambda key, message: problems.append(ConfigError(message, file=shown, key=key))
    )
    if problems:
        raise problems[0] if len(problems) == 1 else ConfigErrors(problems)
    return Schedule(
        pipeline=pipeline,
        name=name,
        file=file,
        cron=cfg["cron"],
        start_date=parse_date(cfg["start_date"]),
        end_date=None if cfg["end_date"] is None else parse_date(cfg["end_date"]),
        catchup=bool(cfg["catchup"]),
        retries=int(cfg["retries"]),
        retry_delay=timedelta(seconds=parse_duration(cfg["retry_delay"])),
        execution_timeout=timedelta(seconds=parse_duration(cfg["execution_timeout"])),
        max_active_runs=int(cfg["max_active_runs"]),
        owner=str(cfg["owner"]),
        tags=tuple(str(t) for t in cfg["tags"]),
        steps=tuple(cfg["steps"]),
    )


def load_schedules(conf_dir: Path) -> tuple[list[Schedule], list[ConfigError]]:
    """Every pipeline's schedules under ``conf_dir``, and the errors of those that fail."""
    project = conf_dir.parent
    schedules: list[Schedule] = []
    errors: list[ConfigError] = []
    for pipeline_file in sorted((conf_dir / "pipeline").glob("*.yaml")):
        pipeline = pipeline_file.stem
        try:
            named = _schedule_files(pipeline_file)
        except Exception as exc:  # a pipeline file that is not YAML: its schedules are unknown
            shown = str(pipeline_file.relative_to(project))
            errors.append(ConfigError(f"cannot read the pipeline's schedules: {str(exc).splitlines()[0]}", file=shown))
            continue
        for name, file_name in named:
            try:
                schedules.append(_checked(pipeline, name, conf_dir / "schedule" / f"{file_name}.yaml", project))
            except ConfigError as exc:
                errors.append(exc)
    return schedules, errors
