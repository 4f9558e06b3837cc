"""The Airflow DAGs of this lakeforge project: one per schedule of each pipeline in conf/
(`lakeforge.pipeline.dags`). Point Airflow's ``dags_folder`` at this folder."""

from pathlib import Path

from lakeforge.pipeline.dags import build_dags

globals().update(build_dags(Path(__file__).resolve().parents[1]))
