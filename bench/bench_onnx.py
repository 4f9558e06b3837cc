"""The ONNX runtime of `lakeforge serve --runtime onnx` against the native one, in process.

A LightGBM classifier shaped like the demo's (21 features, 200 trees, 31 leaves) scored by the
`Scorer` online serving calls, one row at a time (a single-row request's scoring) and in 100k-row
batches, with the model as logged (LightGBM, path reasons) and as its ONNX export (onnxruntime,
reasons by occlusion, one stacked call). Target: the export agrees within 1e-5 on 10,000 rows,
and a single-row request scores at least as fast as natively (ratio = native / onnx time).
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from typing import Any

import lightgbm as lgb
import numpy as np
import pyarrow as pa

from bench.harness import Result, median, report
from lakeforge.scoring.predict import Scorer
from lakeforge.serving.onnx import OnnxModel, convert, parity

NAME = "onnx"
FEATURES = 21
TREES = 200
PARITY_ROWS = 10_000


def _model(rows: int) -> tuple[lgb.LGBMClassifier, np.ndarray]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(rows, FEATURES))
    x[:, 0] = rng.integers(0, 24, rows)
    x[rng.random(x.shape) < 0.03] = np.nan
    y = np.nan_to_num(x[:, 0]) / 24 + np.nan_to_num(x[:, 1:4]).sum(axis=1) * 0.3 + rng.normal(size=rows) > 0.6
    estimator = lgb.LGBMClassifier(n_estimators=TREES, num_leaves=31, learning_rate=0.05, verbose=-1)
    return estimator.fit(x, y.astype(int)), x


def _scorer(estimator: Any, method: str, names: tuple[str, ...]) -> Scorer:
    return Scorer(
        key=f"bench-onnx-{type(estimator).__name__}-{method}",
        label="bench",
        model=pickle.dumps(estimator),
        features=names,
        task="classification",
        threshold=0.5,
        method=method,
        top_k=5,
        exact_min_score=None,
        num_threads=1,
        passthrough=(),
    )


def _single_rows(scorer: Scorer, batches: list[pa.RecordBatch]) -> dict[str, float]:
    times = []
    for batch in batches:
        started = time.perf_counter()
        scorer.score_batch(batch)
        times.append(time.perf_counter() - started)
    ms = np.array(times) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def main(quick: bool = False) -> bool:
    estimator, x = _model(20_000 if quick else 100_000)
    names = tuple(f"f{i}" for i in range(FEATURES))
    onnx_model = OnnxModel(convert(estimator, FEATURES, "classification").SerializeToString(), "classification")
    check = parity(estimator, onnx_model, x[:PARITY_ROWS], names, "classification", f"{PARITY_ROWS} rows")

    contenders = {
        "native_path": _scorer(estimator, "path", names),
        "native_occlusion": _scorer(estimator, "occlusion", names),
        "onnx_occlusion": _scorer(onnx_model, "occlusion", names),
        "native_none": _scorer(estimator, "none", names),
        "onnx_none": _scorer(onnx_model, "none", names),
    }
    table = pa.table({n: x[:, i] for i, n in enumerate(names)})
    singles = [table.slice(i, 1).to_batches()[0] for i in range(300 if quick else 2000)]
    big = table.combine_chunks().to_batches()[0]
    rounds = 1 if quick else 3
    single: dict[str, list[dict[str, float]]] = {k: [] for k in contenders}
    batch_rows_s: dict[str, list[float]] = {"native_none": [], "onnx_none": []}
    for scorer in contenders.values():
        _single_rows(scorer, singles[:50])  # load, compile the trees, create the session: untimed
    for _ in range(rounds):  # alternating
        for name, scorer in contenders.items():
            single[name].append(_single_rows(scorer, singles))
        for name, rates in batch_rows_s.items():
            started = time.perf_counter()
            contenders[name].score_batch(big)
            rates.append(big.num_rows / (time.perf_counter() - started))

    p50 = {k: median([r["p50_ms"] for r in v]) for k, v in single.items()}
    p99 = {k: median([r["p99_ms"] for r in v]) for k, v in single.items()}
    throughput = {k: median(v) for k, v in batch_rows_s.items()}
    ratio = p50["native_path"] / p50["onnx_occlusion"]
    passed = check.ok() and ratio >= 1.0
    result = Result(
        name=NAME,
        figure=(
            f"one row, score + top-5 reasons: onnx {p50['onnx_occlusion']:.2f} ms p50 / {p99['onnx_occlusion']:.2f} "
            f"p99 vs native {p50['native_path']:.2f} / {p99['native_path']:.2f}; score only: onnx "
            f"{p50['onnx_none']:.3f} ms vs native {p50['native_none']:.3f}; {big.num_rows:,}-row batch, 1 thread: "
            f"onnx {throughput['onnx_none']:,.0f} rows/s vs native {throughput['native_none']:,.0f}; "
            f"parity max |diff| {check.max_abs_diff:.1e} on {check.rows:,} rows"
        ),
        target="parity <= 1e-5 on 10,000 rows; single-row scoring no slower than native (ratio >= 1)",
        passed=passed,
        ratio=ratio,
        timings={f"{k}_p50_ms": [r["p50_ms"] for r in v] for k, v in single.items()},
        details={
            "features": FEATURES,
            "trees": TREES,
            "single_rows_per_round": len(singles),
            "rounds": rounds,
            "p50_ms": p50,
            "p99_ms": p99,
            "batch_rows_per_s": throughput,
            "batch_rows": big.num_rows,
            "parity_max_abs_diff": check.max_abs_diff,
            "parity_rows": check.rows,
            "native": "LightGBM Booster.predict (1 thread) + path reasons (Saabas)",
            "onnx": "onnxruntime (1 thread) + occlusion reasons in one stacked call",
        },
    )
    report(result)
    return passed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.bench_onnx", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    sys.exit(0 if main(quick=parser.parse_args().quick) else 1)
