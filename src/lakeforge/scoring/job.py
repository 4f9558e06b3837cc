"""Batch scoring: ``predictions.<model>`` for a run date or a range, one partition per run date.

1. The model versions: the serving alias (``champion`` by default), the shadow aliases and the
   canary's, each loaded once on the driver (`lakeforge.scoring.model`).
2. The features: ``features.<feature_set>`` for the dates, built first through the same code path
   as training (`lakeforge.features.build`) for any date the table does not hold yet.
3. The population: the spine dataset's rows of those dates (e.g. every flight scheduled). Rows
   with no feature row, or a null required feature, get no prediction: they are counted, written
   to ``predictions.<model>__missing`` with the reason and recorded in the commit metadata.
4. Scoring on the executors (`lakeforge.scoring.tasks`): Spark runs one task per row group of
   the feature files; the task reads it with pyarrow, scores it with every alias
   (`lakeforge.scoring.predict`), validates each batch (`lakeforge.scoring.validate`) and
   writes Parquet into the write's staging folder. The job checks that the rows written are
   the rows to score, once per alias, less the rows a model raised on.
5. One Delta commit replaces the dates' partitions (a re-run leaves exactly one set of rows per
   date and alias), its metadata repeating the lineage; then the missing rows, the model's rows
   of ``registry.model_versions`` (`lakeforge.scoring.versions`) and the exports.
"""

from __future__ import annotations

import logging
import pickle
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lakeforge.errors import FeatureError, TableError
from lakeforge.features.build import date_range, ensure_features, spec_from_config
from lakeforge.features.compute import EVENT_DATE
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, data_files, read_table, write_staged, write_table
from lakeforge.lake.delta_common import delta_schema_from_spark
from lakeforge.scoring.coverage import (
    RUN_DATE,
    DayCount,
    account,
    population_of,
    unique_errors,
    with_errors,
)
from lakeforge.scoring.model import ScoringModel, load_model, scorer_for
from lakeforge.scoring.predict import Scorer
from lakeforge.scoring.tasks import BUCKET, Alias, Plan, ServedRule, run_tasks, units_of
from lakeforge.scoring.validate import duplicate_keys, failure_from
from lakeforge.scoring.versions import write_model_versions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreResult:
    """What one scoring job wrote."""

    table: str
    version: int
    rows: int
    start: date
    end: date
    models: dict[str, dict[str, Any]]  # alias -> {version, run_id, served, reasons}
    feature_table: str
    feature_table_version: int
    days: list[DayCount]
    missing_table: str
    exports: list[Any]

    def describe(self) -> str:
        """The job's summary for a person."""
        population = sum(d.population for d in self.days)
        scored = sum(d.scored for d in self.days)
        missing = sum(sum(d.missing.values()) for d in self.days)
        span = f"{self.start}" if self.start == self.end else f"{self.start}..{self.end} ({len(self.days)} days)"
        lines = [
            f"{self.table} v{self.version}: {span}, {self.rows:,} rows from "
            f"{self.feature_table} v{self.feature_table_version}",
            f"  population {population:,}; scored {scored:,}; without a prediction {missing:,}"
            + (f" (in {self.missing_table})" if missing else ""),
        ]
        for alias, m in self.models.items():
            lines.append(f"  {alias:<12} v{m['version']}  run {m['run_id']}  {m['role']}, reasons: {m['reasons']}")
        if len(self.days) <= 10:
            for d in self.days:
                reasons = ", ".join(f"{n:,} {why}" for why, n in d.missing.items()) or "none missing"
                lines.append(f"  {d.run_date}  {d.population:>7,} in population  {d.scored:>7,} scored  {reasons}")
        for export in self.exports:
            lines.append(f"  export {export.format}: {export.rows:,} rows -> {export.target}")
        return "\n".join(lines)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _aliases(scoring: Any) -> list[tuple[str, str]]:
    """(alias, role) in scoring order: the serving alias, the canary, then the shadows."""
    roles = [(str(scoring.alias), "serving")]
    canary = scoring.get("canary")
    if canary is not None:
        roles.append((str(canary.alias), f"canary {float(canary.fraction):.0%}"))
    roles += [(str(a), "shadow") for a in scoring.get("shadow") or [] if str(a) not in {r[0] for r in roles}]
    return roles


def _unique_spine(cfg: Any, spec: Any, keys: Sequence[str]) -> bool:
    """True when ingest checked the spine dataset unique on columns all within ``keys``."""
    dataset = (cfg.get("dataset") or {}).get(spec.spine)
    if dataset is None:
        return False
    checks = dataset.get("checks") or {}
    unique = checks.get("unique")
    columns = [str(c) for c in (dataset.get("primary_key") or [] if unique is None else unique)]
    return bool(columns) and set(columns) <= set(keys)


def _scorer(model: ScoringModel, scoring: Any, spark: Any, keys: list[str]) -> Scorer:
    payload = spark.sparkContext.broadcast(pickle.dumps(model.estimator))
    return scorer_for(model, scoring, payload, (*keys, RUN_DATE, BUCKET), int(scoring.threads_per_task or 1))


def output_schema(features: Any, keys: Sequence[str], task: str) -> Any:
    """The Spark schema of ``predictions.<model>``: the keys as the feature table types them, the
    scores, the reasons, the lineage columns, the run date."""
    from pyspark.sql import types as T  # noqa: N812

    reason = T.StructType([T.StructField("feature", T.StringType()), T.StructField("contribution", T.DoubleType())])
    prediction = T.IntegerType() if task == "classification" else T.DoubleType()
    text = T.StringType()
    return T.StructType(
        [
            *(features.schema[k] for k in keys),
            T.StructField("prediction", prediction),
            T.StructField("score", T.DoubleType()),
            T.StructField("reasons", T.ArrayType(reason)),
            T.StructField("reasons_method", text),
            T.StructField("model_name", text),
            T.StructField("model_alias", text),
            T.StructField("model_version", T.IntegerType()),
            T.StructField("model_run_id", text),
            T.StructField("served", T.BooleanType()),
            T.StructField("feature_table", text),
            T.StructField("feature_table_version", T.LongType()),
            T.StructField("scored_at", T.TimestampType()),
            T.StructField("job_run_id", text),
            T.StructField(RUN_DATE, T.DateType()),
        ]
    )


def _plan(
    spec: Any,
    keys: list[str],
    aliases: list[tuple[ScoringModel, Scorer, str]],
    scoring: Any,
    required: list[str],
    schema: Any,
    constants: dict[str, Any],
) -> Plan:
    """The tasks' plan: (model, scorer, role) per alias in scoring order; the staging folder comes later."""
    canary = scoring.get("canary")
    columns = [*keys, *(f for model, _, _ in aliases for f in model.features), *required]
    return Plan(
        aliases=tuple(
            Alias(
                scorer,
                {
                    "model_name": model.name,
                    "model_alias": model.alias,
                    "model_version": int(model.version),
                    "model_run_id": model.run_id,
                },
                _served_rule(role),
            )
            for model, scorer, role in aliases
        ),
        entity=tuple(spec.entity),
        columns=tuple(dict.fromkeys(columns)),
        required=tuple(required),
        canary=None if canary is None else float(canary.fraction),
        exact_fraction=float(scoring.reasons.exact_fraction or 0.0),
        constants=constants,
        schema=arrow_schema(schema),
        staging="",
        batch_rows=int(scoring.batch_rows),
    )


def _served_rule(role: str) -> ServedRule:
    if role == "serving":
        return "outside-canary"  # every row when there is no canary
    return "inside-canary" if role.startswith("canary") else "none"


@dataclass
class _Sources:
    """Where the tasks read the rows to score: feature files (path, run date) and, for the dates
    whose feature rows differ from the population, rows the job sets aside first; once the tasks
    ran, the rows they wrote and the rows a model raised on."""

    files: list[tuple[str, str]]
    aside: Any  # a Spark DataFrame (keys, features, run date) or None
    written: int = 0
    errors: list[Any] = field(default_factory=list)


def scoring_config(model_cfg: Any) -> Any:
    """``model.scoring`` over its schema's defaults (a config composed by Hydra has them already)."""
    from omegaconf import OmegaConf

    from lakeforge.config.schema_ml import ScoringConfig

    return OmegaConf.merge(OmegaConf.structured(ScoringConfig), model_cfg.get("scoring") or {})


def score(spark: Any, cfg: Any, catalog: Catalog, lineage: Lineage) -> ScoreResult:
    """Score the run date (or start_date..end_date) with the configured aliases; see the module doc."""
    from pyspark.sql import functions as F  # noqa: N812

    from lakeforge.tracking.store import connect

    start, end = date_range(cfg)
    days = _days(start, end)
    model_cfg = cfg.model
    scoring = scoring_config(model_cfg)
    spec = spec_from_config(cfg, str(model_cfg.feature_set))
    keys = [*spec.entity, spec.event_time]
    table = f"predictions.{model_cfg.name}"
    missing_table = f"{table}__missing"

    client = connect(cfg).client
    roles = _aliases(scoring)
    models = {alias: load_model(client, str(model_cfg.name), alias, str(model_cfg.task)) for alias, _ in roles}
    log.info("score: models %s", ", ".join(f"{a}={m.uri}" for a, m in models.items()))
    feature_table = f"features.{spec.name}"
    version = ensure_features(spark, cfg, catalog, lineage, spec, days)
    first, last = start.isoformat(), end.isoformat()

    def in_range(partition: Mapping[str, str | None]) -> bool:
        return first <= (partition.get(EVENT_DATE) or "") <= last

    features = read_table(spark, catalog, feature_table, version, partitions=in_range)
    features = features.withColumnRenamed(EVENT_DATE, RUN_DATE)
    for alias, model in models.items():
        absent = [f for f in model.features if f not in features.columns]
        if absent:
            raise FeatureError(
                f"{model.uri} (alias {alias}) was trained on feature(s) {', '.join(absent)} that "
                f"{feature_table} v{version} does not have; retrain it on today's feature set, or restore them"
            )
    required = [str(f) for f in scoring.get("required_features") or []]
    population, raw_versions = population_of(spark, catalog, spec, start, end)
    lineage = replace(lineage, inputs={**lineage.inputs, feature_table: version, **raw_versions})
    no_row = f"no feature row in {feature_table} v{version}"
    accounting = account(population, features, keys, required, no_row, _unique_spine(cfg, spec, keys))
    to_score, missing, counts = accounting.to_score, accounting.missing, accounting.counts
    if not accounting.unique:
        duplicate_keys(to_score.select(*keys), keys, table)
    log.info(
        "score: %d rows to score, %d without a prediction",
        sum(d.scored for d in counts),
        sum(sum(d.missing.values()) for d in counts),
    )
    scored_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    scorers = {alias: _scorer(models[alias], scoring, spark, keys) for alias, _ in roles}
    schema = output_schema(features, keys, str(model_cfg.task))
    constants = {
        "feature_table": feature_table,
        "feature_table_version": int(version),
        "scored_at": scored_at.replace(tzinfo=UTC),
        "job_run_id": lineage.job_run_id,
    }
    plan = _plan(spec, keys, [(models[a], scorers[a], role) for a, role in roles], scoring, required, schema, constants)
    mismatched = {d.isoformat() for d in accounting.mismatched}
    files = data_files(catalog, feature_table, version, partitions=in_range)
    sources = _Sources(
        files=[(path, str(parts[EVENT_DATE])) for path, parts in files if parts[EVENT_DATE] not in mismatched],
        aside=to_score.where(F.col(RUN_DATE).isin(sorted(mismatched))).select(*plan.columns, RUN_DATE)
        if mismatched
        else None,
    )
    to_score_rows = sum(d.scored for d in counts)

    described = {
        alias: {
            "version": models[alias].version,
            "run_id": models[alias].run_id,
            "role": role,
            "reasons": scorers[alias].method
            + (f" top-{scorers[alias].top_k}" if scorers[alias].method != "none" else ""),
        }
        for alias, role in roles
    }
    serving = {scorers[a].label for a, role in roles if role != "shadow"}
    failed: list[tuple[dict[str, Any], str, str]] = []

    def metadata() -> dict[str, Any]:
        """Called once the rows are written: the model errors are known, the commit not yet made."""
        expected = to_score_rows * len(roles) - len(sources.errors)
        if sources.written != expected:
            raise TableError(
                f"{table}: the scoring tasks wrote {sources.written:,} rows, not the {expected:,} expected "
                f"({to_score_rows:,} rows to score x {len(roles)} model(s), less {len(sources.errors):,} the "
                "models raised on); nothing was committed. Did the feature table change during the job?"
            )
        failed.extend(unique_errors(sources.errors, keys))
        counts[:] = with_errors(counts, failed, serving)
        return {
            "model_name": str(model_cfg.name),
            "models": described,
            "feature_table": feature_table,
            "feature_table_version": version,
            "run_dates": [start.isoformat(), end.isoformat()],
            "coverage": {
                d.run_date.isoformat(): {"population": d.population, "scored": d.scored, "missing": d.missing}
                for d in counts
            },
        }

    result = _write(spark, plan, sources, schema, catalog, table, days, lineage, metadata)
    if failed:
        log.warning("score: the model raised on %d row(s); recorded in %s", len(failed), missing_table)
        rows = [(*(row[k] for k in (*keys, RUN_DATE)), reason) for row, _, reason in failed]
        missing = missing.unionByName(spark.createDataFrame(rows, missing.schema))
    _write_missing(missing, catalog, missing_table, days, lineage, scored_at, keys)
    primary = str(model_cfg.get("primary_metric") or "roc_auc")
    write_model_versions(spark, catalog, client, str(model_cfg.name), primary, replace(lineage, step="score"))
    exports = _exports(spark, cfg, catalog, table, result.version, days, scoring)
    return ScoreResult(
        table=table,
        version=result.version,
        rows=result.rows,
        start=start,
        end=end,
        models=described,
        feature_table=feature_table,
        feature_table_version=version,
        days=counts,
        missing_table=missing_table,
        exports=exports,
    )


def arrow_schema(schema: Any) -> Any:
    """A Spark schema as the Arrow schema the tasks write (every column nullable, as Delta's)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    return pa.schema([f.with_nullable(True) for f in to_arrow_schema(schema, timezone="UTC")])


def _write(
    spark: Any,
    plan: Plan,
    sources: _Sources,
    schema: Any,
    catalog: Catalog,
    table: str,
    days: list[date],
    lineage: Lineage,
    metadata: Callable[[], dict[str, Any]],
) -> Any:
    """One commit replacing the dates' partitions; a worker's validation failure becomes one clear error."""

    def stage(folder: Path, partition_cols: list[str]) -> None:
        files = list(sources.files)
        aside = folder.parent / f"{folder.name}-inputs"
        try:
            if sources.aside is not None:
                sources.aside.write.partitionBy(RUN_DATE).parquet(str(aside))
                files += [(str(p), p.parent.name.partition("=")[2]) for p in sorted(aside.rglob("*.parquet"))]
            # Eight tasks per core at least: equal shares keep every core busy to the end.
            units = units_of(files, 8 * spark.sparkContext.defaultParallelism, plan.batch_rows)
            task_plan = replace(plan, staging=str(folder))
            sources.written, sources.errors = run_tasks(spark, task_plan, units, f"lakeforge score {table}")
        finally:
            shutil.rmtree(aside, ignore_errors=True)

    try:
        return write_staged(
            stage,
            delta_schema_from_spark(schema),
            catalog,
            table,
            mode="overwrite_partitions",
            partition_by=[RUN_DATE],
            replace_partitions=[{RUN_DATE: d} for d in days],
            lineage=replace(lineage, step="score"),
            metadata=metadata,
        )
    except Exception as exc:
        failure = failure_from(exc, table)
        if failure is not None:
            raise failure from None
        raise


def _write_missing(
    missing: Any, catalog: Catalog, table: str, days: list[date], lineage: Lineage, scored_at: datetime, keys: list[str]
) -> None:
    from pyspark.sql import functions as F  # noqa: N812

    rows = missing.select(
        *keys,
        "reason",
        F.lit(lineage.job_run_id).alias("job_run_id"),
        F.lit(scored_at).cast("timestamp").alias("scored_at"),
        RUN_DATE,
    )
    write_table(
        rows.coalesce(1),
        catalog,
        table,
        mode="overwrite_partitions",
        partition_by=[RUN_DATE],
        replace_partitions=[{RUN_DATE: d} for d in days],
        lineage=replace(lineage, step="score"),
    )


def _exports(
    spark: Any, cfg: Any, catalog: Catalog, table: str, version: int, days: list[date], scoring: Any
) -> list[Any]:
    exports = list(scoring.get("exports") or [])
    if not exports:
        return []
    from pyspark.sql import functions as F  # noqa: N812

    from lakeforge.scoring.export import export_predictions

    written = read_table(spark, catalog, table, version).where(F.col(RUN_DATE).between(F.lit(days[0]), F.lit(days[-1])))
    return export_predictions(
        spark,
        written,
        exports,
        days,
        Path(str(cfg.project_root)),
        lake_root=catalog.lake_root if catalog.is_local else None,
        allow_external=catalog.allow_external,
    )
