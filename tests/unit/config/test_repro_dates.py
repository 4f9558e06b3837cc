"""`repro=true`: a job under `dvc repro` takes its dates from pipeline.repro.<step>."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakeforge.config import load_config
from lakeforge.errors import ConfigError
from lakeforge.pipeline.runner import compose_for_job
from tests.unit.config.conftest import edit


def test_repro_sets_the_steps_dates(conf_copy: Path) -> None:
    cfg = compose_for_job("score", ["repro=true"], conf_copy)
    assert (cfg.start_date, cfg.end_date, cfg.run_date) == ("2013-10-16", "2013-12-31", None)
    assert compose_for_job("train", ["repro=true"], conf_copy).run_date == "2013-10-15"


def test_without_repro_the_dates_are_the_callers(conf_copy: Path) -> None:
    cfg = compose_for_job("score", ["run_date=2013-10-20"], conf_copy)
    assert (cfg.run_date, cfg.start_date) == ("2013-10-20", None)


def test_repro_with_dates_given_is_refused(conf_copy: Path) -> None:
    with pytest.raises(ConfigError, match=r"repro=true takes the dates from pipeline.repro.score; drop run_date"):
        compose_for_job("score", ["repro=true", "run_date=2013-10-20"], conf_copy)


def test_repro_for_a_step_without_dates_names_the_ones_there(conf_copy: Path) -> None:
    with pytest.raises(ConfigError, match=r"pipeline.repro has no dates for step 'ingest' \(it has: features, train"):
        compose_for_job("ingest", ["repro=true"], conf_copy)


def test_bad_repro_dates_fail_at_compose_naming_the_file(conf_copy: Path) -> None:
    edit(conf_copy, "pipeline/flight_delay.yaml", 'train: {run_date: "2013-10-15"}', 'train: {run_date: "2013-13-01"}')
    edit(conf_copy, "pipeline/flight_delay.yaml", "    score: {", "    scor: {")
    with pytest.raises(Exception, match=r"conf/pipeline/flight_delay.yaml") as caught:
        load_config([], conf_dir=conf_copy)
    text = str(caught.value)
    assert "pipeline.repro.train.run_date" in text
    assert "unknown step 'scor' (did you mean 'score'?)" in text
