"""model.scoring: every problem reported at compose time with its key (no JVM, no MLflow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakeforge.config import load_config
from lakeforge.errors import ConfigErrors

from .conftest import edit


def test_scoring_config_problems_name_the_key(fixture_conf: Path) -> None:
    edit(fixture_conf, "model/flight_delay.yaml", "seed: 42", (
        "seed: 42\nscoring:\n  shadow: [champion]\n  canary: {alias: challenger, fraction: 1.5}\n"
        "  reasons: {method: shapley}\n  required_features: [dep_hour]\n  exports: [{format: parquet}, {format: xml}]"
    ))  # fmt: skip
    with pytest.raises(ConfigErrors) as info:
        load_config(conf_dir=fixture_conf)
    found = {p.key: p.detail for p in info.value.problems}
    assert {p.file for p in info.value.problems} == {"conf/model/flight_delay.yaml"}
    assert "is the serving alias" in found["model.scoring.shadow[0]"]
    assert "1.5 is not a fraction" in found["model.scoring.canary.fraction"]
    assert "unknown reasons method 'shapley'" in found["model.scoring.reasons.method"]
    assert "'dep_hour' is not a feature of model 'flight_delay'" in found["model.scoring.required_features[0]"]
    assert "a parquet export needs 'path'" in found["model.scoring.exports[0].path"]
    assert "unknown export format 'xml'" in found["model.scoring.exports[1].format"]
