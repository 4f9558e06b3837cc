"""The profile page renders its plots in a real browser (headless Debian Chromium), offline."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lakeforge.data.profile_html import render_profile_html

CHROMIUM = Path("/usr/bin/chromium")
BAR_RGB = (0x4C, 0x78, 0xA8)  # profile_svg.BAR

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian chromium not installed: run scripts/ensure_test_deps.sh"
)


def _profile() -> dict[str, Any]:
    """A profile as profile_table writes it: a numeric, a temporal and a categorical column."""
    return {
        "table": "raw.flights",
        "version": 3,
        "rows": 1000,
        "column_count": 3,
        "target": "delayed",
        "generated_at": "2024-05-01T12:00:00+00:00",
        "methods": {"distinct": "approx_count_distinct"},
        "columns": [
            {
                "name": "dep_delay",
                "type": "double",
                "kind": "numeric",
                "count": 990,
                "nulls": 10,
                "missing_share": 0.01,
                "nans": 0,
                "distinct_approx": 300,
                "min": -20.0,
                "max": 180.0,
                "mean": 12.5,
                "stddev": 30.1,
                "quantiles": {"0.5": 2.0},
                "target_corr": 0.6,
                "histogram": {
                    "edges": [-20.0 + 50 * i for i in range(5)],
                    "per_value": False,
                    "counts": [500, 300, 150, 40],
                    "target_mean": [0.1, 0.3, 0.8, 0.9],
                },
            },
            {
                "name": "time_hour",
                "type": "timestamp",
                "kind": "temporal",
                "count": 1000,
                "nulls": 0,
                "missing_share": 0.0,
                "distinct_approx": 900,
                "min": "2013-01-01 05:00:00",
                "max": "2013-03-31 23:00:00",
                "histogram": {"unit": "month", "labels": ["2013-01", "2013-02", "2013-03"], "counts": [350, 300, 350]},
            },
            {
                "name": "<img src=x onerror=alert(1)>",
                "type": "string",
                "kind": "categorical",
                "count": 1000,
                "nulls": 0,
                "missing_share": 0.0,
                "distinct_approx": 3,
                "top_values": [
                    {"value": "<script>alert(1)</script>", "count": 600, "share": 0.6, "target_mean": 0.2},
                    {"value": "JFK", "count": 400, "share": 0.4, "target_mean": 0.3},
                ],
            },
        ],
    }


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,1400",
    ]
    return subprocess.run([str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=25, check=True)


def test_profile_page_renders_its_plots(tmp_path: Path) -> None:
    page = tmp_path / "raw.flights.profile.html"
    page.write_text(render_profile_html(_profile()), encoding="utf-8")
    url = page.as_uri()

    dom = _chromium(tmp_path, "--dump-dom", url).stdout
    plots = re.findall(r'<svg class="lf-plot[^"]*" data-column="([^"]*)"[^>]*>(.*?)</svg>', dom, re.S)
    assert [column for column, _ in plots] == ["dep_delay", "time_hour", "&lt;img src=x onerror=alert(1)&gt;"]
    assert [body.count("<rect") for _, body in plots] == [4, 3, 2]
    # The hostile values arrived as text, not as elements.
    assert "<script" not in dom and "<img" not in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom

    shot = tmp_path / "page.png"
    _chromium(tmp_path, f"--screenshot={shot}", url)
    try:
        from PIL import Image
    except ImportError:  # Pillow comes in only through matplotlib; a blank page compresses to ~10 kB
        assert shot.stat().st_size > 30_000, "the screenshot is blank"
        return
    image = Image.open(shot).convert("RGB")
    colors = image.getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 10, "the screenshot is blank"
    bar_pixels = sum(count for count, rgb in colors if rgb == BAR_RGB)
    assert bar_pixels > 2000, f"only {bar_pixels} pixels in the bar colour: the plots did not render"
