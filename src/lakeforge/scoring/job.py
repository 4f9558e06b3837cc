"""Batch scoring: ``predictions.<model>`` for a run date or a range, one partition per run date.

1. The model versions: the serving alias (``champion`` by default), the shadow aliases and the
   canary's, each loaded once on the driver (`lakeforge.scoring.model`).
2. The features: ``features.<feature_set>`` for the dates, built first through the same code path
   as training (`lakeforge.features.build`) for any date the table does not hold yet.
3. The population: the spine dataset's rows of those dates (e.g. every flight scheduled). Rows
   with no feature row, or a null required feature, get no prediction: they are counted, written
   to ``predictions.<model>__missing`` with the reason and recorded in the commit metadata.
4. Scoring on the executors with ``mapInArrow`` (`lakeforge.scoring.predict`), every alias on the
   same rows; each batch validated before it leaves the worker (`lakeforge.scoring.validate`).
5. One Delta commit replaces the dates' partitions (a re-run leaves exactly one set of rows per
   date and alias), its metadata repeating the lineage; then the missing rows, the model's rows
   of ``registry.model_versions`` (`lakeforge.scoring.versions`) and the exports.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lakeforge.errors import FeatureError
from lakeforge.features.build import build_features, date_range, spec_from_config
from lakeforge.features.compute import EVENT_DATE
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, read_table, write_table
from lakeforge.lake.delta_common import open_table, snapshot_files
from lakeforge.scoring.coverage import (
    RUN_DATE,
    DayCount,
    account,
    population_of,
    unique_errors,
    with_errors,
)
from lakeforge.scoring.hashing import bucket_column
from lakeforge.scoring.model import ScoringModel, load_model
from lakeforge.scoring.predict import EXACT, RowList, Scorer, resolve_method
from lakeforge.scoring.validate import duplicate_keys, failure_from
from lakeforge.scoring.versions import write_model_versions

log = logging.getLogger(__name__)

BUCKET = "_lf_bucket"
CANARY_SALT = "canary"
EXACT_SALT = "exact-reasons"
LINEAGE_COLUMNS = (
    "model_name",
    "model_alias",
    "model_version",
    "model_run_id",
    "served",
    "feature_table",
    "feature_table_version",
    "scored_at",
    "job_run_id",
)


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


def _missing_dates(catalog: Catalog, table: str, days: Sequence[date]) -> list[date]:
    """The run dates the feature table holds no file for."""
    if not catalog.exists(table):
        return list(days)
    present = {e.partition_values.get(EVENT_DATE) for e in snapshot_files(open_table(catalog, catalog.require(table)))}
    return [d for d in days if d.isoformat() not in present]


def _features_for(spark: Any, cfg: Any, catalog: Catalog, lineage: Lineage, spec: Any, days: list[date]) -> int:
    """The feature table's version holding every date of ``days``, building the dates it lacks."""
    table = f"features.{spec.name}"
    missing = _missing_dates(catalog, table, days)
    if missing:
        log.info(
            "score: %s lacks %d of the %d dates; building %s..%s",
            table,
            len(missing),
            len(days),
            missing[0],
            missing[-1],
        )
        built = build_features(spark, cfg, catalog, replace(lineage, step="features"), missing[0], missing[-1])
        return built.version
    return int(open_table(catalog, catalog.require(table)).version())


def _unique_spine(cfg: Any, spec: Any, keys: Sequence[str]) -> bool:
    """True when ingest checked the spine dataset unique on columns all within ``keys``."""
    dataset = (cfg.get("dataset") or {}).get(spec.spine)
    if dataset is None:
        return False
    checks = dataset.get("checks") or {}
    unique = checks.get("unique")
    columns = [str(c) for c in (dataset.get("primary_key") or [] if unique is None else unique)]
    return bool(columns) and set(columns) <= set(keys)


def _scorer(model: ScoringModel, scoring: Any, spark: Any, keys: list[str], errors: Any) -> Scorer:
    reasons = scoring.reasons
    method = resolve_method(str(reasons.method), model.estimator, int(reasons.top_k))
    payload = spark.sparkContext.broadcast(pickle.dumps(model.estimator))
    settings = f"{method}|{reasons.top_k}|{reasons.exact_min_score}|{scoring.threshold}"
    return Scorer(
        key=f"{model.uri}|{model.run_id}|{settings}",
        label=f"{model.name} v{model.version} (alias {model.alias})",
        model=payload,
        features=model.features,
        task=model.task,
        threshold=float(scoring.threshold),
        method=method,
        top_k=int(reasons.top_k),
        exact_min_score=None if reasons.exact_min_score is None else float(reasons.exact_min_score),
        num_threads=int(scoring.threads_per_task or 1),
        passthrough=(*keys, RUN_DATE, BUCKET),
        errors=errors,
    )


def _output_schema(inputs: Any, scorer: Scorer) -> Any:
    """The Spark schema of `Scorer.output_fields`: the pass-through columns as they are, then the scores."""
    from pyspark.sql import types as T  # noqa: N812

    reason = T.StructType([T.StructField("feature", T.StringType()), T.StructField("contribution", T.DoubleType())])
    prediction = T.IntegerType() if scorer.task == "classification" else T.DoubleType()
    return T.StructType(
        [
            *(inputs.schema[name] for name in scorer.passthrough),
            T.StructField("score", T.DoubleType()),
            T.StructField("prediction", prediction),
            T.StructField("reasons", T.ArrayType(reason)),
            T.StructField("reasons_method", T.StringType()),
        ]
    )


def _scored(
    frame: Any, scorer: Scorer, model: ScoringModel, role: str, canary: Any, lineage_cols: dict[str, Any]
) -> Any:
    """One alias's prediction rows with their lineage columns."""
    from pyspark.sql import functions as F  # noqa: N812

    columns = [*scorer.passthrough, *scorer.features, *([EXACT] if EXACT in frame.columns else [])]
    inputs = frame.select(*dict.fromkeys(columns))
    out = inputs.mapInArrow(scorer, _output_schema(inputs, scorer))
    if role == "serving":
        served = F.col(BUCKET) >= F.lit(float(canary.fraction)) if canary is not None else F.lit(True)
    elif role.startswith("canary"):
        served = F.col(BUCKET) < F.lit(float(canary.fraction))
    else:
        served = F.lit(False)
    return out.withColumns(
        {
            "model_name": F.lit(model.name),
            "model_alias": F.lit(model.alias),
            "model_version": F.lit(model.version).cast("int"),
            "model_run_id": F.lit(model.run_id),
            "served": served,
            **lineage_cols,
        }
    )


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
    version = _features_for(spark, cfg, catalog, lineage, spec, days)
    first, last = start.isoformat(), end.isoformat()
    features = read_table(
        spark, catalog, feature_table, version, partitions=lambda p: first <= (p.get(EVENT_DATE) or "") <= last
    ).withColumnRenamed(EVENT_DATE, RUN_DATE)
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
    canary = scoring.get("canary")
    # The canary's stable hash: SHA-256 per row is not free, so only when a canary is declared.
    bucket = bucket_column(spec.entity, CANARY_SALT) if canary is not None else F.lit(0.0)
    to_score = to_score.withColumn(BUCKET, bucket)
    fraction = float(scoring.reasons.exact_fraction or 0.0)
    if fraction > 0:
        to_score = to_score.withColumn(EXACT, bucket_column(spec.entity, EXACT_SALT) < F.lit(fraction))
    scored_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    lineage_cols = {
        "feature_table": F.lit(feature_table),
        "feature_table_version": F.lit(version).cast("long"),
        "scored_at": F.lit(scored_at).cast("timestamp"),
        "job_run_id": F.lit(lineage.job_run_id),
    }
    errors = spark.sparkContext.accumulator([], RowList())
    scorers = {alias: _scorer(models[alias], scoring, spark, keys, errors) for alias, _ in roles}
    parts = [_scored(to_score, scorers[a], models[a], role, canary, lineage_cols) for a, role in roles]
    frame = parts[0]
    for part in parts[1:]:
        frame = frame.unionByName(part)
    order = [*keys, "prediction", "score", "reasons", "reasons_method", *LINEAGE_COLUMNS, RUN_DATE]
    frame = frame.select(*order)

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
        failed.extend(unique_errors(errors.value, keys))
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

    result = _write(spark, frame, catalog, table, days, lineage, metadata, scoring)
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


def _write(
    spark: Any,
    frame: Any,
    catalog: Catalog,
    table: str,
    days: list[date],
    lineage: Lineage,
    metadata: Callable[[], dict[str, Any]],
    scoring: Any,
) -> Any:
    """One commit replacing the dates' partitions; a worker's validation failure becomes one clear error."""
    conf = "spark.sql.execution.arrow.maxRecordsPerBatch"
    previous = spark.conf.get(conf)
    spark.conf.set(conf, str(int(scoring.batch_rows)))
    try:
        return write_table(
            frame,
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
    finally:
        spark.conf.set(conf, previous)


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
    return export_predictions(spark, written, exports, days, Path(str(cfg.project_root)))
