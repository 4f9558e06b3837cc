"""`lakeforge init NAME --dataset FILE.csv`: a new pipeline's conf/ files from one CSV file.

The file is sniffed (``lakeforge.pipeline.csv_profile``); this module decides what the files say:
the dataset's columns and key, the feature set's entity and features, the label, the model's time
splits and the dates `dvc repro` runs each step for. ``lakeforge.pipeline.scaffold_yaml`` renders
them. The files pass `lakeforge check` as written; what to predict is the one question the data
cannot answer, so without ``--label`` (or an obvious label column) the label is a commented
placeholder and training says what to set.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from lakeforge.errors import UsageError
from lakeforge.pipeline import scaffold_yaml as render
from lakeforge.pipeline.csv_profile import TIME_TYPES, ColumnProfile, CsvProfile, identifier, profile_csv

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
LABEL_COLUMNS = ("label", "target", "y", "class", "outcome")  # a column named so is what to predict
LABEL_NAME = "target"
LABEL_DELAY = "1d"
MIN_DAYS = 10  # shorter data cannot be split into train, validation and test days
SCORE_DAYS = 30  # pipeline.repro.score: at most the data's last 30 days after run_date
DAG_FILE = "lakeforge_dags.py"  # a new project's Airflow DAG file (as this repository's dags/)
NUMERIC = ("int", "long", "float", "double")
# Spark SQL words a generated expression must quote when a column has their name.
_RESERVED_WORDS = (
    "all and any as between both case cast column constraint create cross current_date current_time "
    "current_timestamp current_user distinct else end except false fetch for foreign from full grant "
    "group having in inner intersect interval into is join leading left natural not null on or order "
    "outer primary references right select session_user some table then to trailing true union unique "
    "user using when where with"
)
_RESERVED = frozenset(_RESERVED_WORDS.split())


@dataclass(frozen=True)
class LabelChoice:
    """What the model predicts: a 0/1 expression over the row, computed from ``column``."""

    name: str
    column: str
    expr: str
    note: str  # how the expression was chosen, for the YAML comment


@dataclass(frozen=True)
class Splits:
    """Days before run_date where the train, validation and test windows start (test ends at run_date)."""

    train: int
    validation: int
    test: int
    train_from: date
    validation_from: date
    test_from: date


@dataclass(frozen=True)
class Plan:
    """Everything the generated files say."""

    name: str
    dataset: str
    profile: CsvProfile
    source_path: str
    time_column: ColumnProfile
    entity: tuple[str, ...]
    row_key: str | None  # a text copy of the event time, declared when no other column names a row
    expressions: tuple[tuple[str, str], ...]
    windows: tuple[dict[str, Any], ...]
    text_columns: tuple[ColumnProfile, ...]
    label: LabelChoice | None
    label_example: str
    label_delay: str
    splits: Splits
    run_date: date
    repro: dict[str, Any] = field(default_factory=dict)
    schedule_start: date | None = None
    description: str = ""


@dataclass(frozen=True)
class InitResult:
    """What `lakeforge init` wrote."""

    conf_dir: Path
    written: tuple[Path, ...]
    plan: Plan
    new_project: bool


def sql_name(column: str) -> str:
    """A column reference in a generated Spark SQL expression (quoted only when it must be)."""
    return f"`{column}`" if column.lower() in _RESERVED else column


def check_name(name: str, what: str = "NAME") -> str:
    """``name`` when it can name tables (``predictions.<name>``) and conf files, else a UsageError."""
    if not NAME_PATTERN.match(name):
        suggestion = identifier(name) if name.strip() else "my_pipeline"
        raise UsageError(
            f"{what} '{name}' is not a lowercase identifier (a letter, then letters, digits or _); "
            f"it names tables and conf files: try '{suggestion}'"
        )
    return name


def _label_expr(col: ColumnProfile) -> tuple[str, str]:
    """A 0/1 expression over ``col`` and how it was chosen."""
    ref = sql_name(col.name)
    if col.type == "boolean":
        return f"CAST({ref} AS INT)", f"1 when {col.name} is true"
    if col.binary:
        return f"CAST({ref} AS INT)", f"{col.name} itself, already 0 or 1"
    if col.type in NUMERIC and col.median is not None:
        cut = f"{col.median:.6g}"
        return (
            f"CAST({ref} > {cut} AS INT)",
            f"1 when {col.name} is above {cut}, its median in the file: set the threshold",
        )
    if col.type == "string" and col.top:
        value = col.top[-1] if col.distinct == 2 else col.top[0]
        literal = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        why = (
            "the rarer of its two values" if col.distinct == 2 else "its most common value: choose the class to predict"
        )
        return f"CAST({ref} = {literal} AS INT)", f"1 when {col.name} is {value!r}, {why}"
    raise UsageError(f"--label '{col.name}': a {col.type} column that is always empty cannot be predicted")


def choose_label(profile: CsvProfile, label: str | None) -> LabelChoice | None:
    """The column ``--label`` names, else a column obviously named as the label, else None."""
    if label is None:
        named = [c for c in profile.columns if c.name in LABEL_COLUMNS and c.nulls < profile.rows]
        if len(named) != 1:
            return None
        col = named[0]
    else:
        col = profile.column(label)
        if col.type in TIME_TYPES:
            raise UsageError(f"--label '{label}' is a {col.type} column; name the column holding the outcome")
        if col.name == profile.event_time:
            raise UsageError(f"--label '{label}' is the event time; name the column holding the outcome")
    expr, note = _label_expr(col)
    return LabelChoice(LABEL_NAME, col.name, expr, note)


def _splits(first: date, last: date, path: Path) -> tuple[date, Splits]:
    """run_date at 80% of the data's days; before it, 60% train, 20% validation, 20% test."""
    days = (last - first).days
    if days < MIN_DAYS:
        raise UsageError(
            f"--dataset '{path}' spans {days} day(s) ({first} .. {last}); lakeforge init splits the rows by time "
            f"into train, validation and test days and needs at least {MIN_DAYS} days of data"
        )
    run_date = first + timedelta(days=math.ceil(days * 0.8))
    history = (run_date - first).days
    test = max(1, round(history * 0.2))
    validation = test + max(1, round(history * 0.2))
    splits = Splits(
        history, validation, test, first, run_date - timedelta(days=validation), run_date - timedelta(days=test)
    )
    return run_date, splits


def _features(
    profile: CsvProfile, skip: set[str], taken: set[str]
) -> tuple[list[tuple[str, str]], list[ColumnProfile]]:
    """Expression features: calendar parts of the event time, then every number and true/false column."""
    time = str(profile.event_time)
    ref = sql_name(time)
    calendar = [(f"{time}_month", f"month({ref})"), (f"{time}_day_of_week", f"dayofweek({ref})")]
    if profile.column(time).type == "timestamp":
        calendar.append((f"{time}_hour", f"hour({ref})"))
    expressions = [(n, e) for n, e in calendar if n not in taken]
    text = []
    for col in profile.columns:
        if col.name in skip or col.nulls == profile.rows:
            continue
        if col.type in NUMERIC:
            expressions.append((col.name, sql_name(col.name)))
        elif col.type == "boolean":
            expressions.append((col.name, f"CAST({sql_name(col.name)} AS INT)"))
        elif col.type == "string":
            text.append(col)
    return expressions, text


def _windows(
    profile: CsvProfile, entity: tuple[str, ...], label: LabelChoice | None, days: int
) -> list[dict[str, Any]]:
    """Windows over the entity's earlier rows, when an entity has several rows: a count, and its past labels."""
    known = {c.name: c for c in profile.columns}
    if not entity or entity[0] not in known or known[entity[0]].distinct >= profile.rows:
        return []
    span = "30d" if days >= 120 else "7d" if days >= 21 else "1d"
    windows: list[dict[str, Any]] = [{"name": f"rows_{span}", "function": "count", "window": span, "by": list(entity)}]
    if label is not None:
        windows.append(
            {
                "name": f"past_{label.name}_{span}",
                "function": "avg",
                "column": label.expr,
                "window": span,
                "by": list(entity),
                "lag": LABEL_DELAY,  # only outcomes known by the row's time
            }
        )
    return windows


def _source_path(csv_path: Path, project_root: Path) -> str:
    """The CSV's path as the dataset declares it: relative to the project root when inside it."""
    absolute = csv_path.absolute()
    try:
        return absolute.relative_to(project_root.absolute()).as_posix()
    except ValueError:
        return str(absolute)


def plan_pipeline(
    name: str,
    csv_path: Path,
    project_root: Path,
    *,
    label: str | None = None,
    time: str | None = None,
    dataset_name: str | None = None,
) -> Plan:
    """Sniff ``csv_path`` and decide every generated file's content (nothing is written)."""
    check_name(name)
    dataset = check_name(dataset_name or identifier(Path(csv_path).name.split(".")[0]), "--dataset-name")
    profile = profile_csv(Path(csv_path), event_time=time)
    if profile.event_time is None:
        kinds = ", ".join(f"{c.name} ({c.type})" for c in profile.columns[:12])
        raise UsageError(
            f"--dataset '{csv_path}' has no date or timestamp column ({kinds}); features and the train/test "
            "splits are point-in-time, so a pipeline needs one: name it with --time COLUMN (ISO dates or timestamps)"
        )
    time_col = profile.column(profile.event_time)
    chosen = choose_label(profile, label)
    key_rest = tuple(k for k in profile.primary_key if k != profile.event_time)
    if chosen is not None and chosen.column in key_rest:
        raise UsageError(
            f"--label '{chosen.column}' is part of the primary key guess ({', '.join(profile.primary_key)}): a "
            "key names a row, it is not an outcome; name the column holding the outcome"
        )
    taken = {c.name for c in profile.columns}
    row_key = None
    if not key_rest:
        row_key = next(n for n in (f"{time_col.name}_key", f"{time_col.name}_row", "row_key") if n not in taken)
    entity = key_rest or (str(row_key),)
    skip = {profile.event_time, *profile.primary_key, *entity, *([chosen.column] if chosen else [])}
    expressions, text = _features(profile, skip, taken)
    if len(expressions) <= sum(1 for n, _ in expressions if n.startswith(f"{time_col.name}_")):
        others = ", ".join(f"{c.name} ({c.type})" for c in profile.columns if c.name not in skip) or "none"
        raise UsageError(
            f"--dataset '{csv_path}' has no column a model can use: besides the key, the time and the label there "
            f"are only text or empty columns ({others}); a model needs at least one number or true/false column"
        )
    assert profile.first_time is not None and profile.last_time is not None
    first, last = profile.first_time.date(), profile.last_time.date()
    run_date, splits = _splits(first, last, profile.path)
    example_col = next((c for c in profile.columns if c.name not in skip and c.type in NUMERIC), None)
    example = _label_expr(example_col)[0] if example_col else "CAST(<column> > <threshold> AS INT)"
    what = f"Predict {chosen.note.split(':')[0]}" if chosen else "What it predicts is not set yet (features.label)"
    return Plan(
        name=name,
        dataset=dataset,
        profile=profile,
        source_path=_source_path(Path(csv_path), project_root),
        time_column=time_col,
        entity=entity,
        row_key=row_key,
        expressions=tuple(expressions),
        windows=tuple(_windows(profile, entity, chosen, (last - first).days)),
        text_columns=tuple(text),
        label=chosen,
        label_example=example,
        label_delay=LABEL_DELAY,
        splits=splits,
        run_date=run_date,
        repro={
            "features": (first, last),
            "train": run_date,
            "score": (max(run_date, last - timedelta(days=SCORE_DAYS)), last),
        },
        schedule_start=last,
        description=f"{what}, for each {dataset} row",
    )


def render_files(plan: Plan) -> dict[str, str]:
    """conf/-relative path -> text of every file of the pipeline."""
    return {
        f"dataset/{plan.dataset}.yaml": render.dataset_yaml(plan),
        f"features/{plan.name}.yaml": render.features_yaml(plan),
        f"model/{plan.name}.yaml": render.model_yaml(plan),
        f"schedule/{plan.name}.yaml": render.schedule_yaml(plan),
        f"monitor/{plan.name}.yaml": render.monitor_yaml(plan),
        f"pipeline/{plan.name}.yaml": render.pipeline_yaml(plan),
    }


def init_pipeline(
    name: str,
    csv_path: Path,
    conf_dir: Path,
    *,
    label: str | None = None,
    time: str | None = None,
    dataset_name: str | None = None,
    force: bool = False,
) -> InitResult:
    """Write a new pipeline's files into ``conf_dir`` (creating a project's conf/ when it has none).

    Existing files are refused, each named, unless ``force``. The pipeline is then composed once,
    so a file that would not pass `lakeforge check` fails here; a new project also gets params.yaml.
    """
    conf_dir = conf_dir.absolute()
    plan = plan_pipeline(name, csv_path, conf_dir.parent, label=label, time=time, dataset_name=dataset_name)
    files = render_files(plan)
    existing = [f"{conf_dir.name}/{rel}" for rel in files if (conf_dir / rel).exists()]
    if existing and not force:
        raise UsageError(
            f"would overwrite {', '.join(existing)}; pass --force to replace them, or choose another NAME "
            "(and --dataset-name for the dataset)"
        )
    new_project = not (conf_dir / "config.yaml").is_file()
    if new_project:
        files = {
            **{rel: text for rel, text in render.project_files(name).items() if not (conf_dir / rel).exists()},
            **files,
        }
    paths = {conf_dir / rel: text for rel, text in files.items()}
    dags = conf_dir.parent / "dags"
    if new_project and not dags.exists():
        paths[dags / DAG_FILE] = render.DAG_FILE_TEXT
    for path, text in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    written = list(paths)
    from lakeforge.config import load_config
    from lakeforge.errors import ConfigError

    try:
        cfg = load_config([f"pipeline={name}"], conf_dir=conf_dir)
    except ConfigError as exc:
        shown = ", ".join(str(p.relative_to(conf_dir.parent)) for p in written)
        raise ConfigError(f"wrote {shown}, but pipeline '{name}' does not compose: {exc}") from exc
    if new_project:
        from lakeforge.config.params import write_params

        written.append(write_params(cfg, conf_dir.parent))
    return InitResult(conf_dir, tuple(written), plan, new_project)


def default_pipeline(conf_dir: Path) -> str | None:
    """The pipeline conf/config.yaml composes when none is named (its ``- pipeline: <name>`` default)."""
    import yaml

    try:
        root = yaml.safe_load((conf_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    for entry in root.get("defaults") or [] if isinstance(root, dict) else []:
        if isinstance(entry, dict) and "pipeline" in entry:
            return str(entry["pipeline"])
    return None


def next_steps(result: InitResult) -> list[str]:
    """What to type next, with this pipeline's dates."""
    plan = result.plan
    pick = "" if default_pipeline(result.conf_dir) == plan.name else f" pipeline={plan.name}"
    conf = result.conf_dir.name
    steps = ["next:"]
    if plan.label is None:
        steps.append(
            f"  # set what to predict: features.label in {conf}/features/{plan.name}.yaml, and drop the columns it "
            f"is computed from from model.features in {conf}/model/{plan.name}.yaml"
        )
    else:
        steps.append(f"  # label '{plan.label.name}': {plan.label.note}")
    if not pick:
        steps.append("  lakeforge params      # after each edit of conf/: params.yaml is what DVC tracks")
    last = plan.repro["score"][1]
    steps += [
        "  lakeforge check",
        f"  lakeforge run ingest{pick}",
        f"  lakeforge run train --run-date {plan.run_date}{pick}",
        f"  lakeforge run evaluate --run-date {plan.run_date}{pick}",
        f"  lakeforge run score --run-date {last}{pick}",
        f'  lakeforge sql "SELECT * FROM predictions.{plan.name} ORDER BY score DESC LIMIT 5"',
        "  lakeforge doctor      # if a step cannot start: checks Java, Spark, the lake, MLflow, DVC, Airflow",
    ]
    if result.new_project:
        steps.append("  git init && dvc init  # version the data and the pipeline (`dvc add` the CSV)")
    return steps
