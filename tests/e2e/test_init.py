"""`lakeforge init` to scored predictions on a CSV lakeforge has never seen, with YAML edits only.

The file is matplotlib's sample ``Stocks.csv`` (matplotlib is pinned in requirements.lock): monthly
closing prices of ten stocks and indices, 1990-2022. It starts with a ``#`` comment line, has
headers that are not identifiers (``^GSPC``), rows with every price missing, and no key besides
the date. A new user makes a folder, runs `lakeforge init` (which creates conf/), says what to
predict in YAML, and runs the steps as the init's own instructions say.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import matplotlib
import pytest
from deltalake import DeltaTable

from tests.e2e.conftest import BIN

STOCKS_CSV = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "Stocks.csv"
# What the user writes in conf/features/stocks.yaml: is the S&P 500 above 1,500 points (from the
# other prices that month)?
LABEL = "label:\n  name: target\n  expr: CAST(gspc > 1500 AS INT)\n  available_after: 1d\n"


def _lakeforge(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`lakeforge ARGS` in ``project`` as a new user runs it: no LAKEFORGE_* variables pointing elsewhere."""
    env = {k: v for k, v in os.environ.items() if k not in ("LAKEFORGE_CONF", "LAKEFORGE_HOME")}
    env.update(SPARK_LOCAL_IP="127.0.0.1", COLUMNS="200")
    proc = subprocess.run(
        [str(BIN / "lakeforge"), *args], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"lakeforge {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _edit(path: Path, old: str, new: str) -> None:
    """A user's edit of one YAML file: ``old`` (which must be there) becomes ``new``."""
    text = path.read_text()
    assert old in text, f"{path.name} has no {old!r}:\n{text}"
    path.write_text(text.replace(old, new))


@pytest.mark.slow
def test_init_to_scored_predictions_on_an_unseen_csv(tmp_path: Path) -> None:
    project = tmp_path / "stocks_project"
    (project / "data" / "raw").mkdir(parents=True)
    shutil.copy(STOCKS_CSV, project / "data" / "raw" / "stocks.csv")

    init = _lakeforge(project, "init", "stocks", "--dataset", "data/raw/stocks.csv")
    assert "new project in" in init.stdout
    assert "set what to predict: features.label in conf/features/stocks.yaml" in init.stdout
    dataset = (project / "conf" / "dataset" / "stocks.yaml").read_text()
    assert '{name: gspc, type: double, source_name: "^GSPC"}' in dataset
    assert "{name: date, type: date, nullable: false, source_name: Date}" in dataset
    assert "primary_key: [date]" in dataset and 'comment: "#"' in dataset
    assert "ok: 1 pipeline(s) checked: stocks" in _lakeforge(project, "check").stdout  # as generated

    # The YAML edits: the label, and the model no longer reads the column the label comes from.
    conf = project / "conf"
    _edit(conf / "features" / "stocks.yaml", "label: null\n", LABEL)
    _edit(conf / "model" / "stocks.yaml", "  - gspc\n", "")
    _edit(conf / "model" / "stocks.yaml", "label: null\n", "label: target\n")
    _lakeforge(project, "params")
    _lakeforge(project, "check")

    ingest = _lakeforge(project, "run", "ingest")
    assert "stocks        524        524            0  raw.stocks v0" in ingest.stdout
    # train and evaluate at the dates the generated pipeline.repro gives them (what `dvc repro` runs).
    train = _lakeforge(project, "run", "train", "repro=true")
    assert "model stocks v1 (alias challenger" in train.stdout
    evaluate = _lakeforge(project, "run", "evaluate", "repro=true")
    assert "PROMOTED to champion" in evaluate.stdout, evaluate.stdout
    score = _lakeforge(project, "run", "score", "--run-date", "2022-06-01")
    assert "scored 1" in score.stdout, score.stdout

    predictions = DeltaTable(str(project / "lake" / "predictions" / "stocks")).to_pyarrow_table().to_pylist()
    assert len(predictions) == 1
    row = predictions[0]
    assert str(row["run_date"]) == "2022-06-01" and row["date_key"] == "2022-06-01"
    assert 0.0 <= row["score"] <= 1.0
    assert row["model_name"] == "stocks" and str(row["model_version"]) == "1" and row["served"]
    assert row["reasons"] and row["feature_table"] == "features.stocks"
