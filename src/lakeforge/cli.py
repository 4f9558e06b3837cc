"""The `lakeforge` command line: one error boundary, thin commands over the library.

Every command composes conf/ (plus Hydra-style OVERRIDES such as
``storage.lake_root=/tmp/lake``) and calls one library function. A user error
prints one line and exits with the error's code (2 config/usage, 3 data/table,
4 environment, 75 transient); an unexpected error prints a traceback and exits 70.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from lakeforge import __version__
from lakeforge.errors import UsageError, report_error

app = typer.Typer(
    name="lakeforge",
    help="Declarative batch ML platform: Hydra configs, Spark jobs, Delta tables, MLflow lineage.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")

OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(help="Hydra overrides, e.g. storage.lake_root=/tmp/lake model.params.num_leaves=63"),
]
ConfDirOpt = Annotated[
    Path | None,
    typer.Option("--conf-dir", help="The conf/ folder (default: $LAKEFORGE_CONF or ./conf upwards)."),
]


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _guard(action: Callable[[], T]) -> T:
    """Run a command body behind the error boundary (``lakeforge.errors.report_error``)."""
    try:
        return action()
    except typer.Exit:
        raise
    except (Exception, KeyboardInterrupt) as exc:
        raise typer.Exit(report_error(exc)) from None


def _conf_dir(conf_dir: Path | None) -> Path:
    """The conf/ folder: ``--conf-dir`` as given, else found from $LAKEFORGE_CONF or the cwd."""
    from lakeforge.config import find_conf_dir

    if conf_dir is None:
        return find_conf_dir()
    if not (conf_dir / "config.yaml").is_file():
        raise UsageError(f"--conf-dir '{conf_dir}' has no config.yaml; point it to the project's conf/ folder")
    return conf_dir.absolute()


def _project(overrides: Sequence[str] | None, conf_dir: Path | None) -> tuple[Any, Any]:
    """Compose what the lake commands need (no pipeline) and build the catalog it names."""
    from lakeforge.config import load_lake_config
    from lakeforge.lake.catalog import catalog_from_config

    conf = _conf_dir(conf_dir)
    cfg = load_lake_config(list(overrides or []), conf_dir=conf)
    return cfg, catalog_from_config(cfg.storage, conf.parent)


def _pipeline_project(overrides: Sequence[str] | None, conf_dir: Path | None) -> tuple[Any, Any]:
    """Compose the whole pipeline (datasets, features, model) and build the catalog it names."""
    from lakeforge.config import load_config
    from lakeforge.lake.catalog import catalog_from_config

    conf = _conf_dir(conf_dir)
    cfg = load_config(list(overrides or []), conf_dir=conf)
    return cfg, catalog_from_config(cfg.storage, conf.parent)


def _print_rows(rows: list[dict[str, Any]], fmt: str = "table") -> None:
    import pyarrow as pa

    from lakeforge.lake.sql import format_result

    typer.echo(format_result(pa.Table.from_pylist(rows), fmt), nl=False)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress (INFO).")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


@app.command()
def version() -> None:
    """Print lakeforge's version."""
    typer.echo(f"lakeforge {__version__}")


@app.command()
def check(overrides: OverridesArg = None, conf_dir: ConfDirOpt = None) -> None:
    """Compose every pipeline in conf/ and report every problem (no JVM starts)."""

    def body() -> None:
        from lakeforge.config import check_all_with_default

        conf = _conf_dir(conf_dir)
        pipelines, problems, default = check_all_with_default(list(overrides or []), conf_dir=conf)
        if not problems and not overrides and default is not None:
            from lakeforge.config.params import stale_params

            stale = stale_params(default, conf.parent)
            problems += [stale] if stale else []
        for problem in problems:
            _err(f"error: {problem}")
        if problems:
            _err(f"{len(problems)} problem(s) in {conf}; nothing was run.")
            raise typer.Exit(2)
        typer.echo(f"ok: {len(pipelines)} pipeline(s) checked: {', '.join(pipelines)}")

    _guard(body)


@app.command()
def run(
    step: Annotated[str, typer.Argument(help="The step to run, e.g. ingest")],
    overrides: OverridesArg = None,
    multirun: Annotated[
        bool, typer.Option("--multirun", "-m", help="train only: sweep (a,b,c · choice · range · hydra/sweeper=optuna)")
    ] = False,
    run_date: Annotated[str | None, typer.Option("--run-date", help="YYYY-MM-DD (same as run_date=…)")] = None,
    start: Annotated[str | None, typer.Option("--start", help="first date of a range (start_date=…)")] = None,
    end: Annotated[str | None, typer.Option("--end", help="last date of a range (end_date=…)")] = None,
) -> None:
    """Run one pipeline step in this process (local Spark), e.g. `lakeforge run score --run-date 2013-10-16`."""
    from lakeforge.pipeline.runner import run_job, run_sweep_job
    from lakeforge.pipeline.steps import STEPS

    dates = {"run_date": run_date, "start_date": start, "end_date": end}
    overrides = [f"{key}={value}" for key, value in dates.items() if value is not None] + list(overrides or [])

    def body() -> int:
        if step not in STEPS:
            from lakeforge.errors import did_you_mean

            raise UsageError(f"unknown step '{step}'{did_you_mean(step, STEPS)}; steps: {', '.join(STEPS)}")
        if multirun:
            if step != "train":
                raise UsageError(f"--multirun sweeps the train step only, not '{step}'")
            return run_sweep_job(list(overrides or []))
        return run_job(step, STEPS[step], list(overrides or []))

    raise typer.Exit(_guard(body))


features_app = typer.Typer(help="Feature sets: show the compiled plan, build a date range.", no_args_is_help=True)
app.add_typer(features_app, name="features")


@features_app.command("show")
def features_show(
    feature_set: Annotated[str, typer.Argument(help="The feature set, e.g. flight_delay")],
    overrides: OverridesArg = None,
    conf_dir: ConfDirOpt = None,
) -> None:
    """Print each feature: kind, source, window, lag and the Spark SQL it compiles to (no JVM)."""

    def body() -> None:
        from lakeforge.config import load_config
        from lakeforge.features.build import spec_from_config
        from lakeforge.features.spec import describe

        cfg = load_config(list(overrides or []), conf_dir=_conf_dir(conf_dir))
        spec = spec_from_config(cfg, feature_set)
        typer.echo(f"feature set {spec.name}: spine {spec.spine} at {spec.event_time}, entity {', '.join(spec.entity)}")
        typer.echo(
            "windows use source rows strictly before t - lag; as-of joins the latest row at or before t - lag "
            "(inclusive, as Feast); a null key matches nothing"
        )
        for row in describe(spec):
            typer.echo(f"\n{row['feature']}: {row['kind']}")
            typer.echo(f"  source: {row['source']}")
            if row["window"]:
                typer.echo(f"  window: {row['window']}")
            typer.echo(f"  sql:    {row['sql']}")
        if spec.label is not None:
            typer.echo(
                f"\nlabel {spec.label.name} = {spec.label.expr}, known {spec.label.available_after_s // 3600}h after "
                "the event (training only; never in the feature table)"
            )

    _guard(body)


@features_app.command("build")
def features_build(
    feature_set: Annotated[str, typer.Argument(help="The feature set, e.g. flight_delay")],
    start: Annotated[str, typer.Option(help="First date (YYYY-MM-DD).")],
    end: Annotated[str | None, typer.Option(help="Last date, inclusive (default: start).")] = None,
    overrides: OverridesArg = None,
) -> None:
    """Build features.FEATURE_SET for START..END (local Spark): each date's partition is replaced."""
    from lakeforge.pipeline.runner import run_job
    from lakeforge.pipeline.steps import features_step

    def step(spark: Any, cfg: Any, catalog: Any, lineage: Any) -> None:
        from lakeforge.features.build import spec_from_config

        spec_from_config(cfg, feature_set)
        features_step(spark, cfg, catalog, lineage)

    argv = [*(overrides or []), f"start_date={start}", f"end_date={end or start}"]
    raise typer.Exit(_guard(lambda: run_job("features", step, argv)))


@app.command()
def params(overrides: OverridesArg = None, conf_dir: ConfDirOpt = None) -> None:
    """Write params.yaml (for DVC) from the composed conf/, only when its content changes.

    Inside `dvc exp run`, the experiment's overrides (what DVC composed into params.yaml) are kept.
    """

    def body() -> None:
        from lakeforge.config import load_config
        from lakeforge.config.params import in_dvc_experiment, params_overrides, write_params_if_changed

        conf = _conf_dir(conf_dir)
        argv = list(overrides or [])
        cfg = load_config(argv, conf_dir=conf)
        if in_dvc_experiment():
            extra = params_overrides(cfg, conf.parent)
            cfg = load_config([*argv, *extra], conf_dir=conf) if extra else cfg
            typer.echo(f"dvc exp run: kept {len(extra)} override(s) {' '.join(extra)}".rstrip())
        path = conf.parent / "params.yaml"
        if write_params_if_changed(cfg, conf.parent):
            typer.echo(f"wrote {path}")
        else:
            typer.echo(f"{path} already matches conf/")

    _guard(body)


@app.command()
def tables(
    overrides: OverridesArg = None,
    conf_dir: ConfDirOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """List the lake's tables with version, rows, size and last write."""

    def body() -> None:
        from lakeforge.lake.delta import table_info

        _, catalog = _project(overrides, conf_dir)
        rows = []
        for name in catalog.list_tables():
            info = table_info(catalog, str(name))
            rows.append(
                {
                    "table": str(name),
                    "version": info.version,
                    "rows": info.rows,
                    "files": info.files,
                    "size_mb": round(info.size_bytes / 1e6, 2),
                    "partition_by": ",".join(info.partition_by),
                    "last_write": info.last_write.strftime("%Y-%m-%d %H:%M:%S") if info.last_write else "",
                }
            )
        if not rows:
            typer.echo(f"no tables yet under {catalog.lake_root}")
            return
        _print_rows(rows, fmt)

    _guard(body)


@app.command()
def history(
    table: Annotated[str, typer.Argument(help="Table name, e.g. raw.weather")],
    overrides: OverridesArg = None,
    conf_dir: ConfDirOpt = None,
    limit: Annotated[int | None, typer.Option(help="Newest N commits only.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Show a table's commits with their lineage (job run, git commit, config hash, inputs)."""

    def body() -> None:
        from lakeforge.lake.delta import table_history

        _, catalog = _project(overrides, conf_dir)
        catalog.require(table)
        rows = []
        for entry in table_history(catalog, table, limit=limit):
            lineage = entry.lineage
            rows.append(
                {
                    "version": entry.version,
                    "timestamp": entry.timestamp.strftime("%Y-%m-%d %H:%M:%S") if entry.timestamp else "",
                    "operation": entry.operation,
                    "job_run_id": lineage.get("job_run_id", ""),
                    "step": lineage.get("step", ""),
                    "git_commit": (lineage.get("git_commit") or "")[:12],
                    "config_hash": lineage.get("config_hash", ""),
                    "inputs": lineage.get("inputs", ""),
                    "app_txn": lineage.get("app_txn", ""),
                }
            )
        _print_rows(rows, fmt)

    _guard(body)


@app.command()
def lineage(
    table: Annotated[str, typer.Argument(help="A prediction table, e.g. predictions.flight_delay")],
    overrides: OverridesArg = None,
    conf_dir: ConfDirOpt = None,
    where: Annotated[
        str | None, typer.Option(help="SQL predicate choosing the rows, e.g. \"carrier = 'AA' AND flight = 1545\"")
    ] = None,
    config: Annotated[bool, typer.Option("--config", help="Also print each training run's composed config.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Where predictions came from: model version, training run, data versions, feature table, code, config.

    Exits 1 when no row matches.
    """

    def body() -> None:
        from lakeforge.scoring.lineage import prediction_lineage
        from lakeforge.scoring.lineage_text import no_match_message, render_json, render_text

        if fmt not in ("text", "json"):
            raise UsageError(f"unknown output format '{fmt}'; formats are text, json")
        cfg, catalog = _project(overrides, conf_dir)
        report = prediction_lineage(cfg, catalog, table, where, with_config=config)
        if not report.lineages:
            _err(no_match_message(report))
            raise typer.Exit(1)
        typer.echo(render_json(report) if fmt == "json" else render_text(report), nl=False)

    _guard(body)


@app.command()
def explain(
    table: Annotated[str, typer.Argument(help="A prediction table, e.g. predictions.flight_delay")],
    where: Annotated[
        str, typer.Option(help="SQL predicate choosing the rows, e.g. \"carrier = 'UA' AND flight = 1545\"")
    ],
    limit: Annotated[int, typer.Option(help="Refuse when more rows than this match.")] = 20,
    overrides: OverridesArg = None,
    conf_dir: ConfDirOpt = None,
) -> None:
    """Exact reasons (TreeSHAP) for chosen prediction rows, from the model and feature versions that scored them."""

    def body() -> None:
        from lakeforge.scoring.explain import explain as explain_rows

        cfg, catalog = _project(overrides, conf_dir)
        found = explain_rows(cfg, catalog, table, where, limit)
        if not found:
            _err(f'no rows of {table} match --where "{where}"')
            raise typer.Exit(1)
        typer.echo("\n\n".join(e.describe() for e in found))

    _guard(body)


ModelArg = Annotated[str, typer.Argument(help="The registered model, e.g. flight_delay")]


@app.command()
def materialize(
    feature_set: Annotated[str, typer.Argument(help="The feature set, e.g. flight_delay")],
    full: Annotated[bool, typer.Option("--full", help="Copy the whole table again, not only what changed.")] = False,
    overrides: OverridesArg = None,
    conf_dir: ConfDirOpt = None,
) -> None:
    """Copy the latest feature row per entity of features.FEATURE_SET into the online store (no JVM)."""

    def body() -> None:
        from lakeforge.serving.materialize import materialize as materialize_set
        from lakeforge.serving.store import store_from_config

        cfg, catalog = _pipeline_project(overrides, conf_dir)
        typer.echo(materialize_set(cfg, catalog, feature_set, store_from_config(cfg), full=full).describe())

    _guard(body)


@app.command()
def serve(
    model: Annotated[str, typer.Argument(help="The registered model, e.g. flight_delay")],
    alias: Annotated[
        str | None, typer.Option(help="Serve this alias only (default: model.scoring.alias and its canary).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default online.serve.host: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default online.serve.port: 8000).")] = None,
    runtime: Annotated[
        str,
        typer.Option(help="native: the model as logged; onnx: its `lakeforge export --format onnx` under onnxruntime."),
    ] = "native",
    overrides: OverridesArg = None,
    conf_dir: ConfDirOpt = None,
) -> None:
    """Serve MODEL over HTTP: POST /predict, GET /health, /ready, /metadata, /docs (see docs/serving.md)."""

    def body() -> None:
        from lakeforge.serving.app import serve as serve_model
        from lakeforge.serving.models import RUNTIMES

        if runtime not in RUNTIMES:
            raise UsageError(f"--runtime must be one of {', '.join(RUNTIMES)}, not '{runtime}'")
        cfg, catalog = _pipeline_project(overrides, conf_dir)
        serve_model(cfg, catalog, model, alias, host, port, runtime)

    _guard(body)


@app.command()
def export(
    model: ModelArg,
    format: Annotated[str, typer.Option("--format", help="The file format: onnx.")] = "onnx",
    model_version: Annotated[
        str | None,
        typer.Option("--version", help="The version to export (default: the one model.scoring.alias names)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write the file (default exports/MODEL-vVERSION.onnx).")
    ] = None,
    overrides: OverridesArg = None,
    conf_dir: ConfDirOpt = None,
) -> None:
    """Convert a registered version of MODEL to ONNX, check its scores against the original, write it
    and log it to the version's MLflow run (see docs/serving.md)."""

    def body() -> None:
        from lakeforge.scoring.job import scoring_config
        from lakeforge.scoring.model import composed_model
        from lakeforge.serving.onnx import FORMATS, export_onnx
        from lakeforge.tracking.store import connect

        if format not in FORMATS:
            raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not '{format}'")
        cfg, catalog = _pipeline_project(overrides, conf_dir)
        model_cfg = composed_model(cfg, model)
        alias = str(scoring_config(model_cfg).alias)
        project_dir = _conf_dir(conf_dir).parent
        exported = export_onnx(connect(cfg).client, catalog, model_cfg, model_version, alias, out, project_dir)
        typer.echo(exported.describe())

    _guard(body)


@app.command()
def promote(
    model: ModelArg,
    model_version: Annotated[str, typer.Argument(metavar="VERSION", help="The version to make champion")],
    reason: Annotated[str, typer.Option(help="Why (recorded with the promotion).")] = "manual promotion",
    overrides: OverridesArg = None,
    conf_dir: ConfDirOpt = None,
) -> None:
    """Move the alias `champion` to VERSION by hand, bypassing the gate; recorded like a gate decision."""

    def body() -> None:
        from lakeforge.config import load_config
        from lakeforge.tracking.registry import promote_by_hand

        cfg = load_config(list(overrides or []), conf_dir=_conf_dir(conf_dir))
        moved = promote_by_hand(cfg, model, model_version, reason)
        typer.echo(moved.describe())

    _guard(body)


@app.command()
def rollback(
    model: ModelArg,
    reason: Annotated[str, typer.Option(help="Why (recorded with the rollback).")] = "manual rollback",
    overrides: OverridesArg = None,
    conf_dir: ConfDirOpt = None,
) -> None:
    """Move the alias `champion` back to the version that held it before the current one."""

    def body() -> None:
        from lakeforge.config import load_config
        from lakeforge.tracking.registry import rollback as rollback_champion

        cfg = load_config(list(overrides or []), conf_dir=_conf_dir(conf_dir))
        moved = rollback_champion(cfg, model, reason)
        typer.echo(moved.describe())

    _guard(body)


@app.command()
def compare(
    model: ModelArg,
    args: Annotated[
        list[str] | None,
        typer.Argument(help="Two versions (default: champion and challenger), then any Hydra overrides"),
    ] = None,
    conf_dir: ConfDirOpt = None,
) -> None:
    """Two versions side by side: metrics (overall and slices), params, data versions, code commit."""

    def body() -> None:
        from lakeforge.config import load_config
        from lakeforge.training.compare import compare_versions

        picked = [a for a in args or [] if "=" not in a]
        overrides = [a for a in args or [] if "=" in a]
        if len(picked) not in (0, 2):
            raise UsageError(f"compare takes two versions or none (champion vs challenger), got {' '.join(picked)}")
        cfg = load_config(overrides, conf_dir=_conf_dir(conf_dir))
        left, right = (picked[0], picked[1]) if picked else (None, None)
        typer.echo(compare_versions(cfg, model, left, right), nl=False)

    _guard(body)


@app.command()
def reproduce(
    model: ModelArg,
    model_version: Annotated[str, typer.Argument(metavar="VERSION", help="The version to retrain")],
    overrides: OverridesArg = None,
) -> None:
    """Retrain VERSION from its recorded config and data versions; exit 3 if the metrics differ."""
    from lakeforge.pipeline.runner import run_job

    def step(spark: Any, cfg: Any, catalog: Any, lineage: Any) -> None:
        from lakeforge.training.reproduce import reproduce as reproduce_version

        result = reproduce_version(spark, cfg, catalog, lineage, model, model_version)
        typer.echo(result.describe())

    raise typer.Exit(_guard(lambda: run_job("reproduce", step, list(overrides or []))))


def _parse_versions(pins: Sequence[str]) -> dict[str, int]:
    versions: dict[str, int] = {}
    for pin in pins:
        name, sep, number = pin.partition("=")
        if not sep or not number.strip().isdigit():
            raise UsageError(f"--version '{pin}': expected TABLE=N with N a version number, e.g. raw.weather=3")
        versions[name.strip()] = int(number)
    return versions


@app.command()
def sql(
    statement: Annotated[str, typer.Argument(help='A read-only query, e.g. "SELECT * FROM raw.weather LIMIT 5"')],
    overrides: OverridesArg = None,
    conf_dir: ConfDirOpt = None,
    engine: Annotated[str, typer.Option(help="duckdb (default, embedded) or spark")] = "duckdb",
    version_pins: Annotated[
        list[str] | None, typer.Option("--version", help="Time travel: TABLE=N (repeatable).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    limit: Annotated[int | None, typer.Option(help="Return at most N rows.")] = None,
) -> None:
    """Run a read-only SQL query over the lake's Delta tables."""

    def body() -> None:
        from lakeforge.lake.sql import format_result, run_sql

        cfg, catalog = _project(overrides, conf_dir)
        versions = _parse_versions(version_pins or [])
        spark = None
        if engine == "spark":
            from lakeforge.lake.spark import get_spark

            spark = get_spark(cfg.spark)
        result = run_sql(catalog, statement, engine=engine, versions=versions, spark=spark, limit=limit)
        typer.echo(format_result(result, fmt), nl=False)

    _guard(body)


@app.command()
def profile(
    dataset: Annotated[str, typer.Argument(help="A dataset (profiles raw.<dataset>) or a table, e.g. raw.flights")],
    overrides: OverridesArg = None,
    conf_dir: ConfDirOpt = None,
    target: Annotated[str | None, typer.Option(help="Column to correlate every other column with.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the JSON and HTML reports.")] = Path("reports/profile"),
    version_pin: Annotated[int | None, typer.Option("--version", help="Profile this table version.")] = None,
) -> None:
    """Profile a table (types, nulls, distinct, quantiles, top values, correlation) to JSON and HTML."""

    def body() -> None:
        from lakeforge.data.profile import profile_table
        from lakeforge.lake.spark import get_spark

        cfg, catalog = _project(overrides, conf_dir)
        table = dataset if "." in dataset else f"raw.{dataset}"
        catalog.require(table)
        out_dir = out if out.is_absolute() else Path(str(cfg.project_root)) / out
        spark = get_spark(cfg.spark)
        try:
            result = profile_table(spark, catalog, table, target=target, out_dir=out_dir, version=version_pin)
        finally:
            spark.stop()
        typer.echo(f"profiled {result.table} v{result.version}: {result.rows:,} rows")
        typer.echo(f"  html: {result.html_path}")
        typer.echo(f"  json: {result.json_path}")

    _guard(body)


@app.command()
def report(
    model: Annotated[str, typer.Argument(help="The monitored model, e.g. flight_delay.")],
    overrides: OverridesArg = None,
    conf_dir: ConfDirOpt = None,
    out: Annotated[Path | None, typer.Option(help="The HTML file (default reports/<model>.html).")] = None,
) -> None:
    """Write the monitoring report of MODEL: one self-contained HTML page (drift, scores, performance, alerts)."""

    def body() -> None:
        from lakeforge.monitoring.report import write_report

        cfg, catalog = _project(overrides, conf_dir)
        target = out or Path("reports") / f"{model}.html"
        target = target if target.is_absolute() else Path(str(cfg.project_root)) / target
        path, data = write_report(catalog, model, target)
        dates = sorted({str(r["run_date"]) for r in data.signals})
        typer.echo(f"report of {model}: {len(dates)} run date(s), {dates[0]}..{dates[-1]}")
        typer.echo(f"  open in a browser: {path}")

    _guard(body)


@app.command()
def backtest(
    pipeline: Annotated[str, typer.Argument(help="The pipeline to replay, e.g. flight_delay.")],
    start: Annotated[str, typer.Option("--start", help="First run date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--end", help="Last run date, YYYY-MM-DD.")],
    overrides: OverridesArg = None,
    model_version: Annotated[
        str | None, typer.Option("--model-version", help="Start from this version (default: the champion).")
    ] = None,
) -> None:
    """Replay run dates as the schedule would (score, monitor, labels after their delay, the retrain policy),
    with and without retraining; compare performance per date (reports/<model>__backtest.{json,html})."""
    from lakeforge.pipeline.runner import run_job
    from lakeforge.pipeline.steps import backtest_step

    argv = [f"pipeline={pipeline}", f"start_date={start}", f"end_date={end}", *(overrides or [])]
    if model_version is not None:
        argv.append(f"+backtest_version={model_version}")
    raise typer.Exit(run_job("backtest", backtest_step, argv))


@app.command()
def vacuum(
    table: Annotated[str | None, typer.Argument(help="One table (default: every table).")] = None,
    overrides: OverridesArg = None,
    conf_dir: ConfDirOpt = None,
    retention_hours: Annotated[float, typer.Option(help="Keep files younger than this.")] = 168.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be removed.")] = False,
) -> None:
    """Remove files left by failed or superseded writes, older than the retention period."""

    def body() -> None:
        from lakeforge.lake.delta import vacuum as vacuum_tables

        target: str | None = table
        extra = list(overrides or [])
        if table and "=" in table:  # `lakeforge vacuum storage.lake_root=…`: an override, no table
            target, extra = None, [table, *extra]
        _, catalog = _project(extra, conf_dir)
        if target:
            catalog.require(target)
        results = vacuum_tables(catalog, target, retention_hours=retention_hours, dry_run=dry_run)
        verb = "would remove" if dry_run else "removed"
        for result in results:
            typer.echo(f"{result.table}: {verb} {len(result.files)} file(s), {result.bytes / 1e6:.2f} MB")

    _guard(body)


def _init_conf_dir(conf_dir: Path | None) -> Path:
    """Where `init` writes: ``--conf-dir``, $LAKEFORGE_CONF, the project's conf/ found upwards, else ./conf (new)."""
    from lakeforge.config import find_conf_dir
    from lakeforge.config.compose import CONF_ENV
    from lakeforge.errors import ConfigError

    if conf_dir is not None:
        return conf_dir.absolute()
    if os.environ.get(CONF_ENV):
        return Path(os.environ[CONF_ENV]).expanduser().absolute()
    try:
        return find_conf_dir()
    except ConfigError:
        return Path.cwd() / "conf"


@app.command()
def init(
    name: Annotated[str, typer.Argument(help="The new pipeline, e.g. sales: names its conf files and tables")],
    dataset: Annotated[
        Path, typer.Option("--dataset", help="The CSV file to start from (types, key and time are guessed)")
    ],
    label: Annotated[
        str | None, typer.Option(help="The column holding what to predict (else a placeholder to fill in)")
    ] = None,
    time: Annotated[
        str | None, typer.Option("--time", help="The date/timestamp column rows happen at (default: guessed)")
    ] = None,
    dataset_name: Annotated[
        str | None, typer.Option("--dataset-name", help="The dataset's name (default: the file's name)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace files that already exist.")] = False,
    conf_dir: ConfDirOpt = None,
) -> None:
    """Scaffold a pipeline from a CSV file: dataset, features, model, schedule, monitor and pipeline YAML."""

    def body() -> None:
        from lakeforge.pipeline.scaffold import init_pipeline, next_steps

        result = init_pipeline(
            name, dataset, _init_conf_dir(conf_dir), label=label, time=time, dataset_name=dataset_name, force=force
        )
        root = result.conf_dir.parent
        if result.new_project:
            typer.echo(f"new project in {root}")
        for path in result.written:
            typer.echo(f"wrote {path.relative_to(root)}")
        typer.echo("\n".join(next_steps(result)))

    _guard(body)


@app.command()
def doctor(
    overrides: OverridesArg = None,
    conf_dir: ConfDirOpt = None,
    spark_timeout: Annotated[
        float, typer.Option("--spark-timeout", help="Seconds Spark may take to start and run a job.")
    ] = 180.0,
) -> None:
    """Check Java, Spark start, the lake root, the MLflow store, DVC and Airflow's home; say what to fix."""

    def show(check: Any) -> None:
        typer.echo(f"  {'ok' if check.ok else 'PROBLEM':<8} {check.name:<8} {check.detail}")
        if not check.ok and check.fix:
            typer.echo(f"  {'':<8} {'':<8} fix: {check.fix}")

    def body() -> None:
        from lakeforge.pipeline.doctor import run_checks

        conf = _conf_dir(conf_dir)
        typer.echo(f"lakeforge doctor: {conf.parent}")
        checks = run_checks(conf, list(overrides or []), spark_timeout=spark_timeout, on_check=show)
        problems = [c.name for c in checks if not c.ok]
        if problems:
            _err(f"{len(problems)} problem(s) ({', '.join(problems)}): fix them, then run `lakeforge doctor` again")
            raise typer.Exit(4)
        typer.echo("ok: ready to run pipelines")

    _guard(body)


def main(argv: Sequence[str] | None = None) -> None:
    """Run one `lakeforge` command; ends with SystemExit carrying its exit code."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    try:
        app(args=list(argv) if argv is not None else None, prog_name="lakeforge", standalone_mode=True)
    except SystemExit as exc:
        sys.exit(exc.code)


def script() -> NoReturn:
    """Entry point of the `lakeforge` script: :func:`main`, then the process exits with its code.

    The exit is Python's own, short of the native teardown: thread pools are stopped, non-daemon
    threads joined and the atexit handlers run (logging, MLflow, temporary files, Spark's gateway),
    output is flushed, and then the process ends without destroying native libraries' static
    state. Arrow's thread pools sometimes abort in that teardown ("terminate called without an
    active exception", exit -6) after the command has done all its work (apache/arrow#34314);
    seen failing `dvc repro` at its `lakeforge report` stage.
    """
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # what sys.exit("message") does
        code = 1
    # What the interpreter does at exit, in its order: threading's exit hooks (they stop thread-pool
    # workers) and the join of non-daemon threads, then the atexit handlers.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    script()
