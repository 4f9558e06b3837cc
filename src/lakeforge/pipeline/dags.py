"""Airflow DAGs from conf/: one per schedule of each pipeline (`lakeforge.pipeline.schedules`).

``dags/lakeforge_dags.py`` calls `build_dags` and puts the DAGs in its namespace. Nothing here
imports Spark or MLflow: Airflow parses DAG files every few minutes.

- DAG id ``<pipeline>__<schedule>``; schedule, start and end dates, catchup, owner, tags, retries,
  retry delay and execution timeout from the schedule file. A schedule that runs ``train`` is
  also started by the asset ``lakeforge://<pipeline>/retrain`` (`retrain_asset`), which the
  monitoring step emits when it asks for a retraining.
- One task per step, in the schedule's order, each a spark-submit of the step's job
  (`LakeforgeJobOperator`, connection ``spark_default``) with ``run_date={{ ds }}`` and
  ``pipeline=<pipeline>``. The job composes conf/ itself, so Spark's master and settings come
  from the ``spark`` config group, as on the command line.
- After a ``monitor`` task, ``retrain_request`` (`RetrainRequestOperator`) reads
  ``monitoring.retrain_requests`` with delta-rs: when the monitor asked for a retraining on the run
  date it succeeds and emits the retrain asset, otherwise it skips and emits nothing.
- A task that fails for good calls `FailureAlert`: one critical alert to the monitor's channels
  (``monitor.alerts.channels``: log, file, webhook, email).
- Retries: only a transient failure is retried, i.e. the job exited 75 (a `TransientError`: a
  lost commit race, an unreachable server) or was killed by a signal. Any other failure (a bad
  config, a validation failure, a refused gate) fails the task at once.
- A schedule file that does not load or check becomes an Airflow import error of the DAG file
  naming that file (a placeholder DAG whose validation fails); the other DAGs still load.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, BaseOperator
from airflow.sdk.definitions.timetables.trigger import CronTriggerTimetable
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from lakeforge.config.schema_ml import STEP_JOBS
from lakeforge.errors import TransientError
from lakeforge.pipeline.schedules import Schedule, load_schedules

BROKEN_DAG_ID = "lakeforge__schedule_errors"


def retrain_asset(pipeline: str) -> Asset:
    """The asset whose update starts a pipeline's training schedules."""
    return Asset(f"lakeforge://{pipeline}/retrain")


class LakeforgeJobOperator(SparkSubmitOperator):
    """spark-submit of a lakeforge job; only transient failures are left to Airflow's retries."""

    def execute(self, context: Any) -> Any:
        from lakeforge.lake.spark import driver_java_options

        # spark-submit starts the driver JVM before the job's SparkSession settings apply: pass the
        # driver options lakeforge sets (log4j, the class-data archive) on its command line.
        self.conf = {"spark.driver.extraJavaOptions": driver_java_options(), **(self.conf or {})}
        try:
            return super().execute(context)
        except AirflowException as exc:
            process = getattr(self._hook, "_submit_sp", None)
            code = None if process is None else process.returncode
            if code is not None and (code == TransientError.exit_code or code < 0):
                raise  # transient, or killed: a retry is safe (every write is idempotent)
            raise AirflowFailException(f"exit code {code}: not a transient error, not retried. {exc}") from exc


class RetrainRequestOperator(BaseOperator):
    """After the monitor: emits the pipeline's retrain asset (starting its training schedules) when the
    monitor recorded a retrain request for the run date; skips, emitting nothing, otherwise."""

    def __init__(self, *, project: str, pipeline: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.project = project
        self.pipeline = pipeline

    def execute(self, context: Any) -> Any:
        from datetime import date

        from lakeforge.config import load_config
        from lakeforge.lake.catalog import catalog_from_config
        from lakeforge.monitoring.tables import retrain_requests

        project = Path(self.project)
        cfg = load_config([f"pipeline={self.pipeline}"], conf_dir=project / "conf")
        catalog = catalog_from_config(cfg.storage, project)
        day = date.fromisoformat(str(context["ds"]))
        found = retrain_requests(catalog, model=str(cfg.model.name), run_date=day)
        if not found:
            raise AirflowSkipException(f"no retrain of '{cfg.model.name}' requested on {day}")
        reason = found[-1]["reason"]
        self.log.info("retrain of '%s' requested on %s: %s", cfg.model.name, day, reason)
        return {"model": str(cfg.model.name), "run_date": day.isoformat(), "reason": reason}


class FailureAlert:
    """``on_failure_callback`` of every task: a task that failed for good (no retry left) is sent to
    the pipeline's monitor channels (``monitor.alerts.channels``), as one critical alert."""

    def __init__(self, project: str, pipeline: str) -> None:
        self.project = project
        self.pipeline = pipeline

    def __call__(self, context: Any) -> None:
        from datetime import date

        from lakeforge.config import load_config
        from lakeforge.monitoring.alerts import AlertEvent
        from lakeforge.monitoring.channels import send

        project = Path(self.project)
        cfg = load_config([f"pipeline={self.pipeline}"], conf_dir=project / "conf")
        monitor = cfg.get("monitor")
        channels = list(monitor.alerts.channels) if monitor is not None else ["log"]
        ti = context.get("task_instance") or context.get("ti")
        dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
        task_id = getattr(ti, "task_id", "?")
        day = date.fromisoformat(str(context["ds"]))
        error = context.get("exception")
        rule = f"task_failed:{dag_id}.{task_id}"
        event = AlertEvent(
            run_date=day,
            rule=rule,
            signal="task_failed",
            status="opened",
            episode_id=f"{rule}:{day}",
            episode_start=day,
            value=True,
            threshold=True,
            severity="critical",
            message=f"Airflow task {dag_id}.{task_id} failed for {day}" + (f": {error}" if error else ""),
            notify=True,
            retrain=False,
        )
        send(channels, [event], model=str(cfg.model.name), run_date=day, project_root=project)


class _ScheduleErrors(DAG):
    """Stands for the schedules that failed to load: its validation raises their errors, which
    Airflow records as an import error of the DAG file while the other DAGs load."""

    lakeforge_errors: tuple[str, ...] = ()

    def validate(self) -> None:
        raise ValueError("lakeforge schedule(s) not loaded: " + "; ".join(self.lakeforge_errors))


def _schedule(s: Schedule) -> Any:
    if "train" not in s.steps:
        return s.cron
    asset = retrain_asset(s.pipeline)
    if s.cron is None:
        return [asset]
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(s.cron, timezone="UTC"), assets=[asset])


def _dag(s: Schedule, project: Path) -> DAG:
    dag = DAG(
        dag_id=s.dag_id,
        schedule=_schedule(s),
        start_date=datetime(s.start_date.year, s.start_date.month, s.start_date.day, tzinfo=UTC),
        end_date=None
        if s.end_date is None
        else datetime(s.end_date.year, s.end_date.month, s.end_date.day, tzinfo=UTC),
        catchup=s.catchup,
        max_active_runs=s.max_active_runs,
        tags=list(s.tags),
        doc_md=f"lakeforge pipeline `{s.pipeline}`, schedule `{s.name}`: steps {' → '.join(s.steps)}. "
        f"Generated from `{s.file.relative_to(project) if s.file.is_relative_to(project) else s.file}`.",
        default_args={
            "owner": s.owner,
            "retries": s.retries,
            "retry_delay": s.retry_delay,
            "execution_timeout": s.execution_timeout,
            "on_failure_callback": FailureAlert(str(project), s.pipeline),
        },
    )
    env = {"LAKEFORGE_CONF": str(project / "conf"), "PYSPARK_PYTHON": sys.executable}
    previous = None
    for step in s.steps:
        task = LakeforgeJobOperator(
            task_id=step,
            dag=dag,
            application=str(project / STEP_JOBS[step]),
            conn_id="spark_default",
            name=f"lakeforge-{s.pipeline}-{step}",
            application_args=["run_date={{ ds }}", f"pipeline={s.pipeline}"],
            env_vars=env,
        )
        if previous is not None:
            previous >> task
        previous = task
        if step == "monitor":
            # A retrain request of the monitor becomes an asset event that starts the training schedules.
            request = RetrainRequestOperator(
                task_id="retrain_request",
                dag=dag,
                project=str(project),
                pipeline=s.pipeline,
                outlets=[retrain_asset(s.pipeline)],
            )
            task >> request
    return dag


def build_dags(project: Path) -> dict[str, DAG]:
    """The DAGs of every schedule under ``<project>/conf``, by DAG id (plus the placeholder of
    the schedules that failed, if any)."""
    schedules, errors = load_schedules(project / "conf")
    dags = {s.dag_id: _dag(s, project) for s in schedules}
    if errors:
        broken = _ScheduleErrors(dag_id=BROKEN_DAG_ID, schedule=None)
        broken.lakeforge_errors = tuple(str(e) for e in errors)
        dags[BROKEN_DAG_ID] = broken
    return dags
