"""`lakeforge lineage`: where the rows of a prediction table came from.

For the rows of ``predictions.<model>`` that match a SQL predicate, grouped by the lineage they
share (model version, training run, feature table version, scoring job), it gathers:

- the rows: how many, their ``run_date`` values and when they were scored;
- the model: name, version, the alias it was scored under (``model_alias``), the aliases it holds
  now and the gate's decision on it (model registry);
- the training run (MLflow): id, name, start, ``lakeforge.run_date``, its ``test.*`` metrics (the
  primary metric first, read from the run's composed config), the Delta tables and versions it
  read (tag ``lakeforge.inputs``), its logged dataset inputs, the DVC hashes of the raw data
  (``dvc.*`` tags), its git commit and dirty flag, its config hash and the URI of its composed
  config (artifact ``config/composed.yaml``; the YAML itself with ``with_config``);
- the feature table commit the rows were scored from (``feature_table`` at
  ``feature_table_version``) and the lineage recorded in it: the raw tables and versions it read,
  its job, code and config hash;
- the scoring job: the prediction table's commit(s) made by the rows' ``job_run_id``, with the
  same lineage.

Everything is read-only. The predicate runs only inside ``SELECT … WHERE (<predicate>)`` through
the DuckDB engine of `lakeforge sql` (delta-rs Arrow datasets, external access off); it is
refused if it holds a ``;`` or a comment, or if it does not parse as one expression that stays
inside its parentheses. The MLflow store is opened with a plain client, not ``tracking.connect``,
because that writes: it creates the experiment, and the SQLite file when missing. What cannot be
found (a deleted run, a vacuumed commit, no store) is reported as a note, never a failure.

This module gathers the :class:`LineageReport`; :mod:`lakeforge.scoring.lineage_text` renders it
as text or JSON.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from lakeforge.errors import LakeforgeError, SqlError, TableError, UsageError
from lakeforge.lake.catalog import Catalog, TableName
from lakeforge.lake.delta import HistoryEntry, table_history, table_info

COMPOSED_CONFIG = "config/composed.yaml"  # the training run's config artifact (training.run.COMPOSED_CONFIG)
LINEAGE_COLUMNS = (
    "model_name",
    "model_version",
    "model_run_id",
    "feature_table",
    "feature_table_version",
    "job_run_id",
    "run_date",
)
OPTIONAL_COLUMNS = ("model_alias", "scored_at")
_WHERE_PREFIX = "SELECT * FROM {table} WHERE ("


@dataclass(frozen=True)
class CommitLineage:
    """The lineage lakeforge recorded in one table's commit(s); ``note`` says why it is missing."""

    table: str
    versions: list[int] = field(default_factory=list)
    timestamp: datetime | None = None
    job_run_id: str | None = None
    step: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    config_hash: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    """The registered model version the rows were scored by."""

    name: str
    version: int
    alias: str | None  # as recorded on the rows, at scoring time
    aliases_now: list[str] = field(default_factory=list)
    gate: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class TrainingRun:
    """What the MLflow training run of a model version recorded about where it came from."""

    run_id: str
    found: bool = False
    run_name: str | None = None
    started: datetime | None = None
    run_date: str | None = None
    primary_metric: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    dvc: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    git_dirty: bool | None = None
    config_hash: str | None = None
    config_uri: str | None = None
    config: str | None = None  # the composed YAML, when asked for
    note: str | None = None


@dataclass(frozen=True)
class LineageGroup:
    """Matching rows that share one lineage."""

    rows: int
    run_dates: list[date]
    first_scored_at: datetime | None
    last_scored_at: datetime | None
    model: ModelInfo
    training_run: TrainingRun
    feature_table: CommitLineage
    scoring_job: CommitLineage


@dataclass(frozen=True)
class LineageReport:
    """The answer of `lakeforge lineage`."""

    table: str
    table_version: int
    where: str
    lineages: list[LineageGroup]

    @property
    def rows(self) -> int:
        return sum(group.rows for group in self.lineages)


# -- the rows ----------------------------------------------------------------------------------


def check_predicate(table: TableName, where: str) -> str:
    """The predicate, stripped, if it stays one expression inside ``WHERE (…)``; else a SqlError or UsageError."""
    import duckdb

    text = where.strip()
    if not text:
        raise UsageError("--where is empty: give a SQL predicate, e.g. --where \"run_date = '2013-10-16'\"")
    tokens = duckdb.tokenize(text)
    for i, (offset, kind) in enumerate(tokens):
        token = text[offset : tokens[i + 1][0] if i + 1 < len(tokens) else len(text)]
        if kind == duckdb.token_type.comment:
            raise UsageError(f'--where "{where}": comments are not allowed in the predicate (at character {offset})')
        if ";" in token and kind != duckdb.token_type.string_const:
            raise UsageError(f"--where \"{where}\": the predicate must be one SQL expression, without ';'")
    prefix = _WHERE_PREFIX.format(table=_quoted(table))
    tree = _serialized(prefix + text + ")")
    if tree.get("error"):
        position = int(tree.get("position") or 0) - len(prefix)
        at = f" (at character {position})" if 0 <= position <= len(text) else ""
        raise SqlError(f'--where "{where}" is not a valid SQL predicate: {tree.get("error_message")}{at}')
    if _without_where(tree) != _without_where(_serialized(prefix + "TRUE)")):
        raise UsageError(
            f"--where \"{where}\": the predicate must be one expression that filters rows of '{table}' "
            "(it closes a parenthesis it did not open, or adds clauses to the query)"
        )
    return text


def _serialized(statement: str) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        row = con.execute("SELECT json_serialize_sql(?)", [statement]).fetchone()
    finally:
        con.close()
    return dict(json.loads(row[0])) if row else {"error": True, "error_message": "unparsable"}


def _without_where(tree: dict[str, Any]) -> Any:
    statements = tree.get("statements") or []
    if tree.get("error") or len(statements) != 1:
        return tree
    node = dict(statements[0].get("node") or {})
    node.pop("where_clause", None)
    return node


def _quoted(table: TableName) -> str:
    return f'"{table.layer}"."{table.name}"'


def _lineage_rows(catalog: Catalog, table: TableName, predicate: str, columns: list[str]) -> list[dict[str, Any]]:
    """One row per distinct lineage of the matching rows, aggregated in DuckDB (the rows stay there)."""
    from lakeforge.lake.sql import run_sql

    alias = "model_alias" if "model_alias" in columns else "CAST(NULL AS VARCHAR)"
    scored = "scored_at" if "scored_at" in columns else "CAST(NULL AS TIMESTAMP)"
    statement = (
        f"SELECT model_name, model_version, {alias} AS model_alias, model_run_id, feature_table, "
        f"feature_table_version, job_run_id, count(*) AS row_count, "
        f"list(DISTINCT run_date ORDER BY run_date) FILTER (WHERE run_date IS NOT NULL) AS run_dates, "
        f"min({scored}) AS first_scored_at, max({scored}) AS last_scored_at "
        f"FROM ({_WHERE_PREFIX.format(table=_quoted(table))}{predicate})) AS matched "
        "GROUP BY ALL ORDER BY min(run_date), model_name, model_version, job_run_id"
    )
    try:
        return list(run_sql(catalog, statement).to_pylist())
    except SqlError as exc:
        lines = str(exc).removeprefix("SQL error: ").splitlines()
        detail = " ".join(line.strip() for line in lines if not line.startswith("LINE "))
        raise type(exc)(f"--where \"{predicate}\" on '{table}' failed: {detail}") from None


# -- Delta commits -----------------------------------------------------------------------------


class _Histories:
    """Each table's history, read once (or why it cannot be read)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._found: dict[str, list[HistoryEntry] | str] = {}

    def get(self, table: str) -> list[HistoryEntry] | str:
        if table not in self._found:
            try:
                self._found[table] = table_history(self._catalog, table)
            except LakeforgeError as exc:
                self._found[table] = str(exc)
        return self._found[table]


def _commit(table: str, entries: list[HistoryEntry]) -> CommitLineage:
    newest = max(entries, key=lambda e: e.version)
    found = newest.lineage
    inputs = found.get("inputs")
    return CommitLineage(
        table=table,
        versions=sorted(e.version for e in entries),
        timestamp=newest.timestamp,
        job_run_id=found.get("job_run_id"),
        step=found.get("step"),
        git_commit=_commit_id(found.get("git_commit")),
        git_dirty=_flag(found.get("git_dirty")),
        config_hash=found.get("config_hash"),
        inputs=dict(inputs) if isinstance(inputs, dict) else ({"unparsed": inputs} if inputs else {}),
        note=None if found else "this commit was not written by lakeforge (no lineage recorded)",
    )


def feature_commit(histories: _Histories, table: str, version: int | None) -> CommitLineage:
    """The lineage of ``table``'s commit ``version`` (the feature table the rows were scored from)."""
    history = histories.get(table)
    if isinstance(history, str):
        return CommitLineage(table, [version] if version is not None else [], note=history)
    entries = [e for e in history if e.version == version]
    if not entries:
        return CommitLineage(table, [version] if version is not None else [], note=_absent(history, version))
    return _commit(table, entries)


def _absent(history: list[HistoryEntry], version: int | None) -> str:
    versions = [e.version for e in history]
    have = f"{min(versions)}..{max(versions)}" if versions else "none"
    return f"version {version} is not in the table's history (versions {have}; log entries cleaned up?)"


def scoring_commit(histories: _Histories, table: str, job_run_id: str | None) -> CommitLineage:
    """The commit(s) of the prediction table made by the scoring job ``job_run_id``."""
    history = histories.get(table)
    if isinstance(history, str):
        return CommitLineage(table, job_run_id=job_run_id, note=history)
    entries = [e for e in history if job_run_id and e.lineage.get("job_run_id") == job_run_id]
    if not entries:
        return CommitLineage(
            table, job_run_id=job_run_id, note=f"no commit of '{table}' records this job (log entries cleaned up?)"
        )
    return _commit(table, entries)


def _commit_id(value: Any) -> str | None:
    text = str(value) if value is not None else ""
    return None if text in ("", "None", "none", "null") else text


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    return {"true": True, "false": False}.get(str(value).lower())


# -- MLflow ------------------------------------------------------------------------------------


class _Tracking:
    """Read-only lookups in the project's MLflow store, each run and model version fetched once."""

    def __init__(self, cfg: Any, with_config: bool) -> None:
        from lakeforge.config.compose import resolve_path
        from lakeforge.tracking.store import sqlite_path

        self.uri = resolve_path(cfg, str(cfg.tracking.uri))
        registry = cfg.tracking.get("registry_uri")
        self.registry_uri = resolve_path(cfg, str(registry)) if registry else self.uri
        self.with_config = with_config
        self.client: Any = None
        self.missing: str | None = None
        self._runs: dict[str, TrainingRun] = {}
        self._models: dict[tuple[str, int, str | None, str], ModelInfo] = {}
        db = sqlite_path(self.uri)
        if db is not None and not db.is_file():
            self.missing = f"no MLflow store at {db} (check tracking.uri)"
            return
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.registry_uri)

    def model(self, name: str, version: int, alias: str | None, run_id: str) -> ModelInfo:
        key = (name, version, alias, run_id)
        if key not in self._models:
            self._models[key] = self._model(name, version, alias, run_id)
        return self._models[key]

    def _model(self, name: str, version: int, alias: str | None, run_id: str) -> ModelInfo:
        from lakeforge.errors import RegistryError
        from lakeforge.tracking.registry import GATE_TAG, model_version

        if self.client is None:
            return ModelInfo(name, version, alias, note=self.missing)
        try:
            found = model_version(self.client, name, str(version))
        except RegistryError as exc:
            return ModelInfo(name, version, alias, note=f"{exc} (in {self.registry_uri})")
        note = None
        if found.run_id and found.run_id != run_id:
            note = f"the registry says v{version} was trained by run {found.run_id}, the rows say {run_id}"
        gate = (found.tags or {}).get(f"{GATE_TAG}.decision")
        return ModelInfo(name, version, alias, sorted(getattr(found, "aliases", None) or []), gate, note)

    def run(self, run_id: str) -> TrainingRun:
        if run_id not in self._runs:
            self._runs[run_id] = self._run(run_id)
        return self._runs[run_id]

    def _run(self, run_id: str) -> TrainingRun:
        from mlflow.exceptions import MlflowException

        if self.client is None:
            return TrainingRun(run_id, note=self.missing)
        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
                raise
            return TrainingRun(run_id, note=f"not found in MLflow store {self.uri} (deleted?)")
        tags = dict(run.data.tags)
        config_uri, config = self._config(run)
        primary = _primary_metric(config)
        metrics = {k: v for k, v in run.data.metrics.items() if k.startswith("test.") and k.count(".") == 1}
        ordered = sorted(metrics, key=lambda k: (k != f"test.{primary}", k == "test.rows", k))
        started = run.info.start_time
        return TrainingRun(
            run_id=run_id,
            found=True,
            run_name=run.info.run_name,
            started=datetime.fromtimestamp(started / 1000, tz=UTC) if started else None,
            run_date=tags.get("lakeforge.run_date"),
            primary_metric=primary,
            metrics={k: metrics[k] for k in ordered},
            inputs=_json_tag(tags.get("lakeforge.inputs")),
            datasets=_datasets(run),
            dvc={k.removeprefix("dvc."): v for k, v in sorted(tags.items()) if k.startswith("dvc.")},
            git_commit=_commit_id(tags.get("lakeforge.git_commit")),
            git_dirty=_flag(tags.get("lakeforge.git_dirty")),
            config_hash=tags.get("lakeforge.config_hash"),
            config_uri=config_uri,
            config=config if self.with_config else None,
            note=None if config_uri else f"the run has no {COMPOSED_CONFIG} artifact",
        )

    def _config(self, run: Any) -> tuple[str | None, str | None]:
        """The composed config's artifact URI and text (None, None when the run has none)."""
        folder = COMPOSED_CONFIG.rsplit("/", 1)[0]
        listed = {a.path for a in self.client.list_artifacts(run.info.run_id, folder)}
        if COMPOSED_CONFIG not in listed:
            return None, None
        with tempfile.TemporaryDirectory(prefix="lakeforge-lineage-") as tmp:
            local = self.client.download_artifacts(run.info.run_id, COMPOSED_CONFIG, tmp)
            text = Path(local).read_text()
        return f"{str(run.info.artifact_uri).rstrip('/')}/{COMPOSED_CONFIG}", text


def _primary_metric(config: str | None) -> str | None:
    import yaml

    try:
        data = yaml.safe_load(config) if config else None
    except yaml.YAMLError:
        return None
    model = data.get("model") if isinstance(data, dict) else None
    return str(model.get("primary_metric") or "") or None if isinstance(model, dict) else None


def _json_tag(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {"unparsed": text}
    return dict(value) if isinstance(value, dict) else {"unparsed": text}


def _datasets(run: Any) -> list[dict[str, Any]]:
    """The run's logged dataset inputs: name, context, source (Delta path and version) or digest and rows."""
    found = []
    for item in getattr(run.inputs, "dataset_inputs", None) or []:
        dataset = item.dataset
        context = next((t.value for t in item.tags or [] if t.key == "mlflow.data.context"), None)
        source = _json_tag(dataset.source)
        profile = _json_tag(dataset.profile)
        found.append(
            {
                "name": dataset.name,
                "context": context,
                "source_type": dataset.source_type,
                "path": source.get("path"),
                "version": source.get("delta_table_version"),
                "digest": dataset.digest,
                "rows": profile.get("num_rows"),
            }
        )
    return found


# -- the report --------------------------------------------------------------------------------


def prediction_lineage(
    cfg: Any, catalog: Catalog, table: str, where: str | None = None, *, with_config: bool = False
) -> LineageReport:
    """The lineage of the rows of prediction table ``table`` matching ``where`` (all rows when None).

    ``table`` may be given as the model's name alone (``flight_delay`` is ``predictions.flight_delay``).
    """
    name = catalog.require(table if "." in table else f"predictions.{table}")
    info = table_info(catalog, str(name))
    columns = list(info.schema.names)
    missing = [c for c in LINEAGE_COLUMNS if c not in columns]
    if missing:
        raise TableError(
            f"table '{name}' is not a prediction table: it lacks column(s) {', '.join(missing)} "
            "(prediction tables are written by the score step, e.g. 'predictions.flight_delay')"
        )
    predicate = check_predicate(name, where) if where is not None else "TRUE"
    shown_where = predicate if where is not None else ""
    rows = _lineage_rows(catalog, name, predicate, columns)
    if not rows:  # MLflow (seconds to import) is not needed to say so
        return LineageReport(str(name), info.version, shown_where, [])
    histories, tracking = _Histories(catalog), _Tracking(cfg, with_config)
    groups = []
    for row in rows:
        run_id = str(row["model_run_id"])
        version = int(row["model_version"]) if row["model_version"] is not None else -1
        feature_version = row["feature_table_version"]
        groups.append(
            LineageGroup(
                rows=int(row["row_count"]),
                run_dates=list(row["run_dates"] or []),
                first_scored_at=row["first_scored_at"],
                last_scored_at=row["last_scored_at"],
                model=tracking.model(str(row["model_name"]), version, row["model_alias"], run_id),
                training_run=tracking.run(run_id),
                feature_table=feature_commit(
                    histories, str(row["feature_table"]), int(feature_version) if feature_version is not None else None
                ),
                scoring_job=scoring_commit(histories, str(name), row["job_run_id"]),
            )
        )
    return LineageReport(str(name), info.version, shown_where, groups)
