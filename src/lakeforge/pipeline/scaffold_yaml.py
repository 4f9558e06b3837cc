"""The YAML text `lakeforge init` writes: one function per conf/ file, commented for a newcomer.

Each function takes the decisions of ``lakeforge.pipeline.scaffold`` (a ``Plan``) and returns the
file's text; nothing here reads files or guesses. The files start from their group's schema, so
``lakeforge check`` validates them like any hand-written file.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from lakeforge.pipeline.csv_profile import ColumnProfile
    from lakeforge.pipeline.scaffold import Plan

_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")
_NUMBER_LIKE = re.compile(r"^[-+]?[0-9._]*(?:[eE][-+]?[0-9]+)?$")  # YAML or OmegaConf may read these as numbers
SCHEMA_DEFAULTS = "defaults:\n  - schema\n  - _self_\n"


def scalar(value: Any) -> str:
    """``value`` as a YAML scalar: plain when it reads back the same, else double-quoted."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    text = str(value)
    if _PLAIN.match(text) and not _NUMBER_LIKE.match(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text)


def flow_list(values: Any) -> str:
    """A YAML flow list: ``[a, b]``."""
    return "[" + ", ".join(scalar(v) for v in values) + "]"


def _number(value: Any) -> str:
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


def _when(value: datetime, kind: str) -> str:
    return value.date().isoformat() if kind == "date" else value.strftime("%Y-%m-%d %H:%M:%S")


def seen(col: ColumnProfile, rows: int) -> str:
    """What the rows read held in a column, for the comment after its declaration."""
    if col.nulls == rows:
        return "always empty in the rows read"
    if col.type in ("int", "long", "double") and col.minimum is not None:
        what = f"{_number(col.minimum)} .. {_number(col.maximum)}"
    elif col.type in ("date", "timestamp") and col.minimum is not None:
        what = f"{_when(col.minimum, col.type)} .. {_when(col.maximum, col.type)}"
    elif col.type == "string":
        shown = ", ".join(v if len(v) <= 20 else v[:17] + "..." for v in col.top[:3])
        what = f"{col.distinct:,} values: {shown}" + (", ..." if col.distinct > 3 else "")
    else:
        what = ", ".join(col.top[:2])
    return what + (f"; {col.nulls:,} missing" if col.nulls else "")


def dataset_yaml(plan: Plan) -> str:
    """conf/dataset/<dataset>.yaml: the source, its columns, key, event time and checks."""
    p = plan.profile
    rows = f"the first {p.rows:,} rows" if p.sampled else f"its {p.rows:,} rows"
    lines = [
        f"# {plan.dataset}: {p.path.name}, declared by `lakeforge init` from {rows}.",
        "# Types and nullability are guesses from those rows: check them, and add value checks",
        "# (ge, le, gt, lt, isin, regex, str_length) as in conf/dataset/flights.yaml. A row failing a",
        f"# check goes to quarantine.{plan.dataset} with the check's name; good rows to raw.{plan.dataset}.",
        SCHEMA_DEFAULTS,
        f"description: {scalar(p.path.name)}",
        "source:",
        "  format: csv",
        f"  path: {scalar(plan.source_path)}",
        "  options:",
    ]
    notes = {
        "header": "the first line names the columns",
        "sep": "the field delimiter",
        "comment": "lines starting with '#' are comments",
        "nullValue": "how the file writes a missing value (an empty field is missing too)",
    }
    lines += [f"    {key}: {json.dumps(value)}  # {notes[key]}" for key, value in p.options.items()]
    lines += [
        "# nullable: false (never missing) where no value was missing in the rows read; what was seen",
        "# follows each column. source_name: the header's spelling, where it is not an identifier.",
        "columns:",
    ]
    for col in p.columns:
        lines.append(f"  - {_column(col.name, col.type, col.nulls == 0, col.source)}  # {seen(col, p.rows)}")
    if plan.row_key:
        lines += [
            f"  # Not a column of its own: '{plan.time_column.source}' again, as text, naming each row. A feature",
            "  # set's entity (what a row describes) must be a column other than its event time.",
            f"  - {_column(plan.row_key, 'string', True, plan.time_column.source)}",
        ]
    if p.primary_key:
        key_note = "a guess: unique and never missing in the rows read; duplicates are quarantined"
        lines.append(f"primary_key: {flow_list(p.primary_key)}  # {key_note}")
    else:
        lines.append("primary_key: []  # no unique combination of columns was found: name the key if there is one")
    lines += [
        f"event_time: {scalar(p.event_time)}  # when each row happened: features are computed as of it",
        "checks:",
        "  row_count: {min: 1}",
        f"  # A daily feed would also declare freshness: {{column: {p.event_time}, max_age: 2d}}",
        "# Above this share of quarantined rows the ingest fails and writes nothing.",
        "max_bad_fraction: 0.01",
    ]
    return "\n".join(lines) + "\n"


def _column(name: str, kind: str, required: bool, source: str) -> str:
    parts = [f"name: {scalar(name)}", f"type: {kind}"]
    if required:
        parts.append("nullable: false")
    if source != name:
        parts.append(f"source_name: {scalar(source)}")
    return "{" + ", ".join(parts) + "}"


def features_yaml(plan: Plan) -> str:
    """conf/features/<name>.yaml: entity, spine, row expressions, windows and the label."""
    p = plan.profile
    lines = [
        f"# Features of {plan.name}, computed point-in-time for each row of {plan.dataset} (the spine) as of its",
        f"# {p.event_time}. Add expressions (Spark SQL over the row), windows over earlier rows, as-of and static",
        "# joins to other datasets (see conf/features/flight_delay.yaml and docs/features.md);",
        f"# `lakeforge features show {plan.name}` prints the Spark SQL each feature compiles to.",
        SCHEMA_DEFAULTS,
        f"name: {plan.name}",
        f"description: Features of each {plan.dataset} row",
        "# What a row describes: the key columns of the prediction table, what windows group by.",
        f"entity: {flow_list(plan.entity)}",
        "spine:",
        f"  dataset: {plan.dataset}",
        f"  event_time: {p.event_time}",
        "# The zone of calendar features; times without an offset in the file are read as UTC.",
        "timezone: UTC",
        "expressions:",
    ]
    lines += [f"  - {{name: {scalar(n)}, expr: {scalar(e)}}}" for n, e in plan.expressions]
    if plan.text_columns:
        col = min(plan.text_columns, key=lambda c: c.distinct)
        value = col.top[0].replace("'", "\\'") if col.top else "x"
        lines += [
            f"  # Not features yet, the model takes numbers: {', '.join(c.name for c in plan.text_columns)}.",
            "  # Encode one, e.g.",
            f"  # - {{name: {col.name}_is_{_slug(value)}, expr: {json.dumps(f'CAST({col.name} = {value!r} AS INT)')}}}",
        ]
    if plan.windows:
        lines.append("# Aggregates over the entity's earlier rows (strictly before the row's time, minus the lag).")
        lines.append("windows:")
        for w in plan.windows:
            lines.append(
                "  - " + "\n    ".join(f"{k}: {scalar(v) if k != 'by' else flow_list(v)}" for k, v in w.items())
            )
    lines += _label_lines(plan)
    return "\n".join(lines) + "\n"


def _slug(value: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", value.lower()).strip("_")[:20] or "value"


def _label_lines(plan: Plan) -> list[str]:
    if plan.label is None:
        example = plan.label_example
        return [
            "# What to predict: not set yet. Give a Spark SQL expression over the row that is 1 or 0, e.g.",
            "# label:",
            "#   name: target",
            f"#   expr: {example}",
            "#   available_after: 1d",
            f"# then remove what it is computed from from model.features (conf/model/{plan.name}.yaml).",
            f"# (`lakeforge init {plan.name} --dataset FILE --label COLUMN --force` writes both for a column.)",
            "label: null",
        ]
    return [
        "label:",
        f"  name: {plan.label.name}",
        f"  # {plan.label.note}",
        f"  expr: {scalar(plan.label.expr)}",
        "  # How long after the row's time its outcome is known: training uses a row only once its",
        "  # label is known by run_date.",
        f"  available_after: {plan.label_delay}",
    ]


def model_yaml(plan: Plan) -> str:
    """conf/model/<name>.yaml: estimator, features, splits, metrics, gate and scoring."""
    s = plan.splits
    what = f"'{plan.label.name}' ({plan.label.note})" if plan.label else "the feature set's label (not set yet)"
    lines = [
        f"# {plan.name}: a LightGBM classifier of {what}.",
        "# Built as instantiate(estimator, **params); try e.g. `lakeforge run train model.params.num_leaves=31`.",
        SCHEMA_DEFAULTS,
        f"name: {plan.name}",
        "estimator:",
        "  _target_: lightgbm.LGBMClassifier",
        "params:",
        "  n_estimators: 100",
        "  num_leaves: 15",
        "  learning_rate: 0.05",
        "  min_child_samples: 20",
        "  verbose: -1",
        f"feature_set: {plan.name}",
        "# The features the model uses (all of them when empty); never one the label is computed from.",
        "features:",
    ]
    lines += [f"  - {scalar(name)}" for name, _ in plan.expressions]
    lines += [f"  - {scalar(w['name'])}" for w in plan.windows]
    lines += [
        f"label: {plan.label.name if plan.label else 'null'}",
        "task: classification",
        f"# Offsets from run_date ({plan.run_date}, pipeline.repro.train): train on {s.train_from} ..",
        f"# {s.validation_from}, validate until {s.test_from}, test until run_date (labels known by run_date).",
        "splits:",
        f"  train: {{start: -{s.train}d, end: -{s.validation}d}}",
        f"  validation: {{start: -{s.validation}d, end: -{s.test}d}}",
        f"  test: {{start: -{s.test}d, end: 0d}}",
        "metrics: [roc_auc, pr_auc, log_loss, brier]",
        "primary_metric: roc_auc",
        "seed: 42",
        "# The promotion gate `lakeforge run evaluate` applies before the model becomes the champion.",
        "gate:",
        "  min_metrics: {}  # floors, e.g. {roc_auc: 0.6}",
        "  min_improvement: -0.01  # a champion may be replaced by a model up to 0.01 worse",
        "  # Must beat a model that always predicts the majority class (or e.g. LogisticRegression).",
        "  baseline:",
        "    estimator: {_target_: sklearn.dummy.DummyClassifier}",
        "scoring:",
        "  alias: champion  # the registered version that scores",
        "  threshold: 0.5  # prediction = score >= threshold",
    ]
    return "\n".join(lines) + "\n"


def schedule_yaml(plan: Plan) -> str:
    """conf/schedule/<name>.yaml: one daily Airflow schedule running every step."""
    return (
        "\n".join(
            [
                f"# Every day: ingest, rebuild the day's features, retrain and gate, score ({plan.name}).",
                "# Split it in two as conf/schedule/daily_score.yaml and weekly_train.yaml do once training costs.",
                SCHEMA_DEFAULTS,
                'cron: "0 6 * * *"',
                f'start_date: "{plan.schedule_start}"',
                "catchup: false",
                "retries: 1",
                "retry_delay: 5m",
                "execution_timeout: 2h",
                f"tags: [{plan.name}]",
                "steps: [ingest, features, train, evaluate, score]",
            ]
        )
        + "\n"
    )


def monitor_yaml(plan: Plan) -> str:
    """conf/monitor/<name>.yaml: drift of the model's features against its training data."""
    return (
        "\n".join(
            [
                f"# Watch {plan.name}: feature drift against the training data, quality once labels arrive.",
                SCHEMA_DEFAULTS,
                f"name: {plan.name}",
                f"model: {plan.name}",
                "reference: {kind: training}",
                "current_window: 7d",
                "alerts:",
                "  # Signals: drift_share, prediction_drift, missing_share, predictions_missing, performance.roc_auc …",
                "  rules:",
                "    - {name: feature_drift, signal: drift_share, above: 0.3, n_of: 3, last: 5}",
                "    - {name: predictions_missing, signal: predictions_missing, when_true: true, severity: critical}",
                "  channels: [log]",
            ]
        )
        + "\n"
    )


def pipeline_yaml(plan: Plan) -> str:
    """conf/pipeline/<name>.yaml: the groups the pipeline composes and the dates `dvc repro` runs."""
    r = plan.repro
    sampled = f" (in the first {plan.profile.rows:,} rows: check the end)" if plan.profile.sampled else ""
    return (
        "\n".join(
            [
                "# @package _global_",
                f"# {plan.name}: generated by `lakeforge init` from {plan.profile.path.name}. Run a step with",
                f"# `lakeforge run STEP pipeline={plan.name}`; `lakeforge check` checks every file it names.",
                "defaults:",
                f"  - /dataset@dataset.{plan.dataset}: {plan.dataset}",
                f"  - /features: {plan.name}",
                f"  - /model: {plan.name}",
                f"  - /schedule@schedule.daily: {plan.name}",
                f"  - /monitor: {plan.name}",
                "  - _self_",
                "",
                "pipeline:",
                f"  name: {plan.name}",
                f"  description: {scalar(plan.description)}",
                f"  datasets: [{plan.dataset}]",
                f"  feature_set: {plan.name}",
                f"  model: {plan.name}",
                f"  monitor: {plan.name}",
                "  schedules: [daily]",
                "  # The dates each step runs for under `dvc repro` (repro=true), from the data's range",
                f"  # {r['features'][0]} .. {r['features'][1]}{sampled}: train and gate as of {r['train']},",
                "  # score what follows.",
                "  repro:",
                f'    features: {{start_date: "{r["features"][0]}", end_date: "{r["features"][1]}"}}',
                f'    train: {{run_date: "{r["train"]}"}}',
                f'    evaluate: {{run_date: "{r["train"]}"}}',
                f'    score: {{start_date: "{r["score"][0]}", end_date: "{r["score"][1]}"}}',
            ]
        )
        + "\n"
    )


def project_files(pipeline: str) -> dict[str, str]:
    """conf/config.yaml and the storage, spark, tracking and online groups of a new project (one machine)."""
    return {
        "config.yaml": "\n".join(
            [
                "# Primary config, written by `lakeforge init`. Check it with `lakeforge check`.",
                "# Relative paths resolve against the project root (the directory holding conf/).",
                "defaults:",
                "  - lakeforge_schema",
                "  - storage: local",
                "  - spark: local",
                "  - tracking: local",
                "  - online: sqlite",
                f"  - pipeline: {pipeline}",
                "  - _self_",
                "",
                "# ISO date (YYYY-MM-DD); Airflow passes its logical date, the CLI takes run_date=…",
                "run_date: null",
                "# A date range for backfills (feature builds, scoring): start_date=… end_date=…",
                "start_date: null",
                "end_date: null",
            ]
        )
        + "\n",
        "storage/local.yaml": "# Lake on the local disk, under the project root.\n"
        + SCHEMA_DEFAULTS
        + "\nkind: local\nlake_root: lake\noptions: {}\n",
        "spark/local.yaml": "# Embedded Spark on this machine.\n"
        + SCHEMA_DEFAULTS
        + "\nmaster: local[*]\ndriver_memory: 2g\nshuffle_partitions: 8\n",
        "tracking/local.yaml": "# MLflow on SQLite with local artifacts, under the project root (or $LAKEFORGE_HOME).\n"
        + SCHEMA_DEFAULTS
        + "\nuri: sqlite:///${oc.env:LAKEFORGE_HOME,.}/mlflow.db\n"
        + "artifact_location: ${oc.env:LAKEFORGE_HOME,.}/mlartifacts\n",
        "online/sqlite.yaml": "# The online feature store of `lakeforge materialize` and `lakeforge serve`.\n"
        + SCHEMA_DEFAULTS
        + "\nkind: sqlite\npath: online/features.sqlite\nserve: {host: 127.0.0.1, port: 8000}\n",
    }


DAG_FILE_TEXT = (
    '"""The Airflow DAGs of this lakeforge project: one per schedule of each pipeline in conf/\n'
    '(`lakeforge.pipeline.dags`). Point Airflow\'s ``dags_folder`` at this folder."""\n\n'
    "from pathlib import Path\n\n"
    "from lakeforge.pipeline.dags import build_dags\n\n"
    "globals().update(build_dags(Path(__file__).resolve().parents[1]))\n"
)
