"""The benchmark harness: what `make bench` writes, and the scale benchmark's verdict and plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench import __main__ as bench_main
from bench import bench_scale, harness


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(harness, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(harness, "LATEST", tmp_path / "latest.md")
    monkeypatch.setattr(harness, "LATEST_JSON", tmp_path / "latest.json")
    return tmp_path


def test_record_writes_the_details_and_one_row_per_benchmark_in_latest_md_and_json(results: Path) -> None:
    harness.record(harness.Result("score", "5M rows: x0.78", "x>=0.75", True, 0.78, {"a": [1.0, 2.0, 3.0]}))
    harness.record(harness.Result("ingest", "1M rows: x3.9", "x<=2", False, 3.9))
    harness.record(harness.Result("score", "5M rows: x0.80", "x>=0.75", True, 0.80))  # replaces its row

    table = (results / "latest.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| ") and not line.startswith(("| benchmark", "| ---"))]
    assert [r.split("|")[1].strip() for r in rows] == ["ingest", "score"]
    assert "x0.80" in rows[1] and "| pass |" in rows[1] and "| short |" in rows[0]

    latest = json.loads((results / "latest.json").read_text())
    assert list(latest["benchmarks"]) == ["ingest", "score"]
    assert latest["benchmarks"]["score"]["ratio"] == 0.80
    assert latest["all_passed"] is False
    machine = latest["benchmarks"]["ingest"]["machine"]
    assert machine["cpu_count"] >= 1 and machine["python"].startswith("3.11")

    details = json.loads((results / "score.json").read_text())
    assert details["figure"] == "5M rows: x0.80" and details["machine"]["pyspark"]


def test_alternating_runs_need_at_least_three_for_a_median() -> None:
    calls: list[str] = []
    timings = harness.time_alternating({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, warmup=1)
    assert calls == ["a", "b"] * 4  # one warm-up round, then three timed ones, interleaved
    assert {k: len(v) for k, v in timings.items()} == {"a": 3, "b": 3}
    with pytest.raises(ValueError, match="at least 3 runs"):
        harness.time_alternating({"a": lambda: None}, runs=2)


def test_make_bench_runs_every_benchmark_file_in_its_order() -> None:
    files = {p.stem.removeprefix("bench_") for p in harness.BENCH_DIR.glob("bench_*.py")}
    names = bench_main.available()
    assert set(names) == files
    # The scoring project is built once and shared: score, then monitor and scale; the demo last.
    assert names.index("score") < names.index("monitor") < names.index("scale") < names.index("pipeline")
    assert names[-1] == "pipeline"


def test_an_unknown_benchmark_name_is_refused_with_the_available_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        bench_main.main(["scoring"])
    assert exit_.value.code == 2
    assert "unknown benchmark(s) scoring; available: sql, lake_write" in capsys.readouterr().err


def _sizes(us_per_row: list[float], jvm_mb: list[int]) -> dict[int, dict[str, float]]:
    mb = 2**20
    return {
        n: {"seconds": us * n / 1e6, "python": 500 * mb, "jvm": j * mb}
        for n, us, j in zip((1_000_000, 5_000_000, 20_000_000), us_per_row, jvm_mb, strict=True)
    }


def test_scale_spreads_are_largest_over_smallest_of_time_per_row_and_each_peak() -> None:
    flat = bench_scale.spreads(_sizes([6.0, 5.5, 5.6], [1000, 1100, 1200]))
    assert flat["us_per_row"] == pytest.approx(6.0 / 5.5)
    assert flat["jvm"] == pytest.approx(1.2) and flat["python"] == 1.0
    growing = bench_scale.spreads(_sizes([5.0, 6.0, 9.0], [1000, 2000, 4000]))
    assert growing["us_per_row"] == pytest.approx(1.8) and growing["jvm"] == pytest.approx(4.0)


def test_scale_marginal_cost_leaves_out_the_fixed_cost_of_a_run() -> None:
    # 5 s paid once per run plus 5 µs per row: the time per row falls with size, the added cost does not.
    per_size = {n: {"seconds": 5.0 + 5e-6 * n} for n in (1_000_000, 5_000_000, 20_000_000)}
    assert bench_scale.marginal_us_per_row(per_size) == pytest.approx([5.0, 5.0])
    assert bench_scale.spreads({n: {**m, "python": 1, "jvm": 1} for n, m in per_size.items()})["us_per_row"] > 1.9


def test_scale_plot_is_a_png(tmp_path: Path) -> None:
    target = tmp_path / "scale.png"
    bench_scale.plot({"scoring": _sizes([6.0, 5.5, 5.6], [1000, 1100, 1200])}, target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
