"""Spark MLlib estimators: fitted and measured on the executors, for training data that does not fit
the driver.

The estimator (``model.estimator._target_: pyspark.ml.classification.GBTClassifier``) is the last
stage of a Pipeline: a median ``Imputer`` over the features (MLlib trees take no null or NaN), a
``VectorAssembler``, then the estimator reading ``FEATURES`` and the label as a double. Every
metric of every split is a Spark aggregation, with the same formulas as ``fit.metric`` (checked
against it in tests/spark/test_mllib.py): only the test split, which is small, is brought to the
driver (``data.spark_training_data``) for the plots, the slice metrics and the gate.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from lakeforge.errors import ConfigError
from lakeforge.training.data import LABEL, SPLIT, SPLITS
from lakeforge.training.fit import THRESHOLD, Fitted, scores

FEATURES = "_features"
SCORE = "_score"  # P(label = 1)
ROW = "_row"
CLIP = 1e-15  # as fit.metric's log_loss


def pipeline(estimator: Any, features: Sequence[str]) -> Any:
    """Imputer (median) -> VectorAssembler -> ``estimator`` on ``FEATURES`` and ``LABEL``."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import Imputer, VectorAssembler

    imputed = [f"_imputed_{i}" for i in range(len(features))]
    estimator.setFeaturesCol(FEATURES).setLabelCol(LABEL)
    return Pipeline(
        stages=[
            Imputer(strategy="median", inputCols=list(features), outputCols=imputed),
            VectorAssembler(inputCols=imputed, outputCol=FEATURES),
            estimator,
        ]
    )


def with_score(scored: Any) -> Any:
    """``scored`` (a transformed frame) with ``SCORE``: P(label = 1) from the probability vector."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F  # noqa: N812

    return scored.withColumn(SCORE, vector_to_array(F.col("probability"))[1])


def _average_precision(scored: Any, label: str, positives: float) -> float:
    """scikit-learn's average precision, sum over thresholds of (R_k - R_k-1) * P_k, ties grouped.

    The cumulative counts run over the distinct scores only (one row each), in one partition.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    by_score = scored.groupBy(SCORE).agg(F.sum(F.col(label)).alias("tp"), F.count(F.lit(1)).alias("n"))
    upto = Window.orderBy(F.col(SCORE).desc()).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    cumulative = by_score.select("tp", F.sum("tp").over(upto).alias("ctp"), F.sum("n").over(upto).alias("cn"))
    total = cumulative.agg(F.sum(F.col("tp") * F.col("ctp") / F.col("cn"))).first()[0]
    return float(total) / positives


def spark_metrics(scored: Any, label: str, names: Sequence[str]) -> dict[str, float]:
    """Each metric of ``names`` over ``scored`` (``label`` a 0/1 double, ``SCORE``), as aggregations."""
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.sql import functions as F  # noqa: N812

    y, p = F.col(label), F.col(SCORE)
    clipped = F.least(F.greatest(p, F.lit(CLIP)), F.lit(1 - CLIP))
    hard = F.when(p >= THRESHOLD, 1.0).otherwise(0.0)
    row = scored.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(y).alias("positives"),
        F.sum(-(y * F.log(clipped) + (1 - y) * F.log(1 - clipped))).alias("log_loss"),
        F.sum((p - y) * (p - y)).alias("brier"),
        F.sum(hard * y).alias("tp"),
        F.sum(hard * (1 - y)).alias("fp"),
        F.sum((1 - hard) * y).alias("fn"),
        F.sum(F.when(hard == y, 1.0).otherwise(0.0)).alias("correct"),
    ).first()
    n, positives, tp, fp, fn = (float(row[k] or 0.0) for k in ("n", "positives", "tp", "fp", "fn"))
    both = 0 < positives < n

    def ratio(num: float, den: float) -> float:
        return num / den if den else 0.0  # scikit-learn's zero_division=0

    def roc_auc() -> float:
        # numBins=0: no down-sampling of the curve, every distinct score a threshold (as scikit-learn).
        evaluator = BinaryClassificationEvaluator(
            rawPredictionCol=SCORE, labelCol=label, metricName="areaUnderROC", numBins=0
        )
        return float(evaluator.evaluate(scored))

    computed = {
        "roc_auc": lambda: roc_auc() if both else float("nan"),
        "pr_auc": lambda: _average_precision(scored, label, positives) if both else float("nan"),
        "log_loss": lambda: float(row["log_loss"]) / n,
        "brier": lambda: float(row["brier"]) / n,
        "accuracy": lambda: float(row["correct"]) / n,
        "precision": lambda: ratio(tp, tp + fp),
        "recall": lambda: ratio(tp, tp + fn),
        "f1": lambda: ratio(2 * tp, 2 * tp + fp + fn),
    }
    unknown = [m for m in names if m not in computed]
    if unknown:
        raise ConfigError(
            f"metric(s) {', '.join(unknown)} are not measured for a Spark MLlib classifier; "
            f"allowed: {', '.join(computed)}",
            key="model.metrics",
        )
    return {m: computed[m]() for m in names}


def fit_and_measure(estimator: Any, splits: Any, features: Sequence[str], metric_names: Sequence[str]) -> Fitted:
    """Fit the pipeline on the ``train`` rows of ``splits`` (``data.spark_training_data``) on the
    executors; every metric on every split. ``Fitted.estimator`` is the PipelineModel."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F  # noqa: N812

    model = pipeline(estimator, features).fit(splits.where(F.col(SPLIT) == "train"))
    results: dict[str, dict[str, float]] = {}
    for split in SPLITS:
        scored = with_score(model.transform(splits.where(F.col(SPLIT) == split))).select(LABEL, SCORE)
        scored = scored.persist(StorageLevel.MEMORY_AND_DISK)  # read by up to three jobs
        try:
            results[split] = spark_metrics(scored, LABEL, metric_names)
        finally:
            scored.unpersist()
    return Fitted(model, results)


def score_frame(model: Any, spark: Any, frame: Any, columns: Sequence[str]) -> np.ndarray:
    """P(label = 1) of a fitted pipeline for each row of the pandas ``frame`` (its ``columns``), in order."""
    rows = frame[list(columns)].astype("float64").reset_index(drop=True)
    rows[ROW] = np.arange(len(rows), dtype="int64")
    scored = with_score(model.transform(spark.createDataFrame(rows))).select(ROW, SCORE).toPandas()
    return scored.sort_values(ROW)[SCORE].to_numpy(dtype=float)


def score_model(spark: Any, uri: str, frame: Any, columns: Sequence[str], task: str) -> np.ndarray:
    """The scores of the logged model ``uri`` on the pandas ``frame``: a Spark-flavour model through a
    Spark frame, any other through scikit-learn's API (``fit.scores``)."""
    import mlflow
    from mlflow.models import get_model_info

    if "spark" not in get_model_info(uri).flavors:
        return scores(mlflow.sklearn.load_model(uri), frame[list(columns)], task)
    if task != "classification":
        raise ConfigError(f"{uri} is a Spark MLlib model: scored for classification only", key="model.task")
    return score_frame(mlflow.spark.load_model(uri), spark, frame, columns)


def importances(model: Any) -> Any:
    """The fitted estimator's importances in the shape ``plots.importance_plot`` reads (or the stage)."""
    stage = model.stages[-1]
    values = getattr(stage, "featureImportances", None)
    return SimpleNamespace(feature_importances_=values.toArray()) if values is not None else stage


def log_spark_model(model: Any, features: Sequence[str], registered_name: str | None, name: str = "model") -> Any:
    """Log the PipelineModel with the Spark flavour (registered as ``registered_name`` when given).

    The signature's inputs are the scikit-learn models' (every feature an optional double); its output
    is the predicted class, which is what the Spark flavour's pyfunc returns.
    """
    import mlflow.spark
    import pyspark
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from lakeforge.tracking.models import signature

    inputs = signature(features, "classification").inputs
    return mlflow.spark.log_model(
        model,
        artifact_path=name,
        signature=ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double")])),
        pip_requirements=[f"pyspark=={pyspark.__version__}"],
        registered_model_name=registered_name,
    )


def log_spark_split(frame: Any, name: str, label: str, catalog: Any, table: str, version: int, context: str) -> None:
    """A split kept in Spark as a dataset input (digest of its plan, schema), its source the spine table."""
    import mlflow
    from mlflow.data.spark_dataset import SparkDataset

    from lakeforge.tracking.lineage import delta_source

    source = delta_source(catalog.table_uri(table), version)
    with warnings.catch_warnings():  # as lineage.log_split: a split's schema is a record, not a signature
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column", category=UserWarning)
        mlflow.log_input(SparkDataset(df=frame, source=source, targets=label, name=name), context=context)
