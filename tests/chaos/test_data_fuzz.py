"""Data fuzzing of the ingest: hostile CSV and JSON lines through the real ingest into a real lake.

Each file mixes valid rows with hundreds of hostile ones of every kind (helpers_data_fuzz.py): wrong
field counts, broken quoting, invalid UTF-8, NaN/inf, overflowing and over-long numbers, duplicate
keys, 10,000-character strings, blank lines, a BOM, CRLF and bare CR, JSON that is not an object,
truncated, of the wrong type, with duplicate fields or content after the object. For every file:
rows in (counted here from the bytes) = rows accepted + rows quarantined, as the ingest reports and as
the tables hold; every line lands exactly once, in raw.<dataset> with the values it carried or in
quarantine.<dataset> with the check it fails; no accepted row breaks a declared check. Inputs the
ingest must refuse as a whole fail with a DataValidationError that says why.

The seed is fixed (``LAKEFORGE_FUZZ_SEED`` overrides it) and printed in every failure message.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lakeforge.data import IngestReport
from lakeforge.errors import DataValidationError
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import read_table
from tests.chaos.helpers_data_fuzz import (
    COLUMNS,
    HEADER,
    MALFORMED,
    NAMES,
    TAG,
    Fuzz,
    Line,
    count_csv_records,
    count_json_records,
    count_rfc_records,
    csv_file,
    csv_lines,
    json_file,
    json_lines,
    kind_counts,
    multiline_csv,
)
from tests.spark.test_ingest_rows import dataset_node, ingest_node

SEED = int(os.environ.get("LAKEFORGE_FUZZ_SEED", "20130101"))
ROUNDS = 12  # each round writes every hostile kind once (some twice), between good rows
WHERE = f"(seed {SEED}; rerun with LAKEFORGE_FUZZ_SEED={SEED})"
# Microseconds since 1970 of 0001-01-01 and 10000-01-01 (UTC): accepted timestamps lie between.
YEAR_1_MICROS, YEAR_10000_MICROS = -62_135_596_800_000_000, 253_402_300_800_000_000
# A reason is a check name: <declared column>:<check>, or a row- or key-level check.
REASON = re.compile(
    r"(?P<column>\w+):(?P<check>type|finite|encoding|range|partition|not_null|ge\(-?[\d.e+]+\)|le\([\d.e+]+\)"
    r"|str_length\(\.\.10000\))|_row:malformed|_key:unique"
)


@dataclass
class Outcome:
    """One fuzzed ingest: what was written, what the ingest said, what the tables hold."""

    name: str
    lines: list[Line]
    rows_in: int  # counted here, from the file's bytes
    report: IngestReport
    raw: list[dict[str, Any]]
    quarantine: list[dict[str, Any]]


def _fuzz_node(path: str, fmt: str, **options: str) -> Any:
    return dataset_node(
        COLUMNS,
        path=path,
        source={"format": fmt, "options": options},
        primary_key=["id"],
        partition_by=["region"],
        max_bad_fraction=1.0,
        new_columns="ignore",
    )


def _ingest(spark: Any, root: Path, name: str, data: bytes, node: Any) -> tuple[IngestReport, list[Any], list[Any]]:
    (root / node.source.path).write_bytes(data)
    report = ingest_node(spark, root, node, name=name)
    catalog = Catalog(root / "lake")
    raw = read_table(spark, catalog, f"raw.{name}").selectExpr("*", "unix_micros(ts) AS _ts_micros")
    quarantine = read_table(spark, catalog, f"quarantine.{name}")
    return report, [r.asDict() for r in raw.collect()], [r.asDict() for r in quarantine.collect()]


@pytest.fixture(scope="module")
def outcomes(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Three fuzzed ingests: line-mode CSV, JSON lines, multi-line CSV."""
    root = tmp_path_factory.mktemp("fuzz")
    fz = Fuzz(SEED)
    found: dict[str, Outcome] = {}

    lines, _ = csv_lines(fz, ROUNDS)
    data = csv_file(lines, bom=True)
    report, raw, bad = _ingest(spark, root, "fuzz_csv", data, _fuzz_node("in.csv", "csv", header="true"))
    found["csv"] = Outcome("csv", lines, count_csv_records(data), report, raw, bad)

    lines, _ = json_lines(fz, ROUNDS)
    data = json_file(lines, bom=True)
    report, raw, bad = _ingest(spark, root, "fuzz_json", data, _fuzz_node("in.json", "json"))
    found["json"] = Outcome("json", lines, count_json_records(data), report, raw, bad)

    data, lines = multiline_csv(fz, 60)
    node = _fuzz_node("multi.csv", "csv", header="true", multiLine="true", escape='"')
    report, raw, bad = _ingest(spark, root, "fuzz_multiline", data, node)
    found["multiline csv"] = Outcome("multiline csv", lines, count_rfc_records(data), report, raw, bad)

    for outcome in found.values():
        kinds = kind_counts(outcome.lines)
        print(
            f"\nfuzz {outcome.name} {WHERE}: {sum(kinds.values())} hostile lines of {len(kinds)} kinds, "
            f"{outcome.rows_in} rows in, {outcome.report.rows_accepted} accepted, "
            f"{outcome.report.rows_quarantined} quarantined; {dict(sorted(kinds.items()))}"
        )
    return found


FORMATS = ["csv", "json", "multiline csv"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_rows_in_equal_rows_accepted_plus_quarantined(outcomes: dict[str, Outcome], fmt: str) -> None:
    out = outcomes[fmt]
    report = out.report
    written = sum(1 for line in out.lines if line.kind != "blank")
    assert out.rows_in == written, f"the generator wrote {written} records, the file holds {out.rows_in} {WHERE}"
    assert report.rows_in == out.rows_in, f"{fmt}: {out.rows_in} rows in the file, ingest saw {report.rows_in} {WHERE}"
    assert report.rows_accepted + report.rows_quarantined == report.rows_in, WHERE
    assert (len(out.raw), len(out.quarantine)) == (report.rows_accepted, report.rows_quarantined), WHERE
    assert sum(report.check_failures.values()) >= report.rows_quarantined, WHERE


def _tags(row: dict[str, Any]) -> set[str]:
    return {t for c in [*NAMES, "_raw_record"] if isinstance(row.get(c), str) for t in TAG.findall(row[c])}


def _placed(out: Outcome) -> dict[str | None, list[tuple[str, dict[str, Any]]]]:
    """Output rows by the tag they carry (None: untagged)."""
    placed: dict[str | None, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for table, rows in (("raw", out.raw), ("quarantine", out.quarantine)):
        for row in rows:
            tags = _tags(row)
            assert len(tags) <= 1, f"{table} row carries several tags {sorted(tags)} {WHERE}"
            placed[next(iter(tags), None)].append((table, row))
    return placed


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_line_lands_once_where_it_belongs(outcomes: dict[str, Outcome], fmt: str) -> None:
    out = outcomes[fmt]
    placed = _placed(out)
    problems = []
    for line in out.lines:
        if line.kind == "blank" or line.tag is None:
            continue
        landed = placed.pop(line.tag, [])
        if len(landed) != 1:
            problems.append(f"{line.kind}: {line.tag} landed {len(landed)} times: {line.data[:120]!r}")
            continue
        table, row = landed[0]
        reasons = list(row.get("_failed_checks") or [])
        if line.expect and (table != "quarantine" or not set(line.expect) & set(reasons)):
            problems.append(f"{line.kind}: {line.tag} in {table} {reasons}, expected one of {line.expect}")
        elif not line.expect and table != "raw":
            problems.append(f"{line.kind}: {line.tag} quarantined {reasons}: {line.data[:160]!r}")
    untagged_in = Counter(tuple(line.expect) for line in out.lines if line.kind != "blank" and line.tag is None)
    untagged_out = placed.pop(None, [])
    assert not placed, f"rows with tags nobody wrote: {sorted(placed)} {WHERE}"
    assert len(untagged_out) == sum(untagged_in.values()), f"untagged lines in {untagged_in} {WHERE}"
    allowed = {name for expect in untagged_in for name in expect}
    for table, row in untagged_out:
        if table != "quarantine" or not allowed & set(row["_failed_checks"]):
            problems.append(f"untagged line in {table} {row.get('_failed_checks')}: {row.get('_raw_record')!r:.120}")
    assert not problems, f"{len(problems)} lines misplaced {WHERE}:\n" + "\n".join(problems[:40])


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_quarantined_row_names_the_checks_it_failed(outcomes: dict[str, Outcome], fmt: str) -> None:
    declared = set(NAMES)
    for row in outcomes[fmt].quarantine:
        reasons = row["_failed_checks"]
        assert reasons, f"quarantined without a reason: {row} {WHERE}"
        for reason in reasons:
            match = REASON.fullmatch(reason)
            assert match and match["column"] in (None, *declared), f"reason {reason!r} names no check {WHERE}"
        if MALFORMED in reasons:
            assert row["_raw_record"], f"a malformed row without its raw record {WHERE}"


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float):
        return isinstance(got, float) and got == want and math.copysign(1, got) == math.copysign(1, want)
    return bool(got == want)


@pytest.mark.parametrize("fmt", FORMATS)
def test_accepted_rows_keep_the_values_they_carried(outcomes: dict[str, Outcome], fmt: str) -> None:
    out = outcomes[fmt]
    raw = {row["tag"]: row for row in out.raw}
    problems = []
    for line in out.lines:
        if line.expect or line.tag not in raw:
            continue
        row = {**raw[line.tag], "ts": raw[line.tag]["_ts_micros"]}
        for column, want in line.want.items():
            if not _same(row[column], want):
                problems.append(f"{line.kind} {line.tag}: {column} = {row[column]!r:.80}, written {want!r:.80}")
    assert not problems, f"{len(problems)} values changed {WHERE}:\n" + "\n".join(problems[:40])


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_accepted_row_breaks_a_declared_check(outcomes: dict[str, Outcome], fmt: str) -> None:
    for row in outcomes[fmt].raw:
        assert row["id"] is not None and row["tag"] is not None, WHERE
        assert row["name"] is None or len(row["name"]) <= 10_000, WHERE
        assert row["qty"] is None or row["qty"] >= 0, WHERE
        assert row["amount"] is None or (math.isfinite(row["amount"]) and abs(row["amount"]) <= 1e15), WHERE
        assert row["ratio"] is None or math.isfinite(row["ratio"]), WHERE
        for column in ("name", "note", "tag", "region"):
            assert row[column] is None or "\ufffd" not in row[column], WHERE
        assert row["day"] is None or 1 <= row["day"].year <= 9999, WHERE
        assert row["_ts_micros"] is None or YEAR_1_MICROS <= row["_ts_micros"] < YEAR_10000_MICROS, WHERE


# ---- inputs refused as a whole -----------------------------------------------------------------------

GOOD_CSV = HEADER + b"\n1,TAG000001,a,1,1.0,0.5,1.00,true,2013-01-01,2013-01-01T00:00:00Z,n,north\n"
REFUSED = {
    "empty csv": ("csv", b"", r"dataset 'refused': source '.*in\.csv' is empty"),
    "csv with only a BOM": ("csv", b"\xef\xbb\xbf", r"source '.*in\.csv' is empty"),
    "csv header and blank lines": ("csv", HEADER + b"\n\n  \n\t\n", r"the source has no rows; nothing written"),
    "empty json": ("json", b"", r"source '.*in\.json' is empty"),
    "json of blank lines": ("json", b"\n  \n\t\r\n", r"source '.*in\.json' is empty"),
    "csv line past 20,480 fields": (
        "csv",
        GOOD_CSV + b"2,TAG000002" + b",x" * 20_500 + b"\n",
        r"a line of '.*in\.csv' has more than 20,480 fields; nothing written.*maxColumns",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_input_refused_as_a_whole_says_why(spark: Any, tmp_path: Path, case: str) -> None:
    fmt, data, message = REFUSED[case]
    path = f"in.{fmt}"
    (tmp_path / path).write_bytes(data)
    node = _fuzz_node(path, fmt, **({"header": "true"} if fmt == "csv" else {}))
    with pytest.raises(DataValidationError, match=message):
        ingest_node(spark, tmp_path, node, name="refused")
    assert not Catalog(tmp_path / "lake").exists("raw.refused")


def test_too_many_bad_rows_are_refused_with_short_examples(spark: Any, tmp_path: Path) -> None:
    # 10,001-character names fail str_length: the message names the check and stays readable.
    long_name = b"n" * 10_001
    body = b"".join(
        b"%d,TAG%06d,%s,1,1.0,0.5,1.00,true,2013-01-01,2013-01-01T00:00:00Z,n,north\n" % (i, i, long_name)
        for i in range(20)
    )
    (tmp_path / "in.csv").write_bytes(HEADER + b"\n" + body)
    node = _fuzz_node("in.csv", "csv", header="true")
    node.max_bad_fraction = 0.5
    with pytest.raises(DataValidationError, match=r"20 of 20 rows \(100\.00%\) failed checks") as info:
        ingest_node(spark, tmp_path, node, name="refused")
    message = str(info.value)
    assert "name:str_length(..10000) (20)" in message
    assert len(message) < 4_000, f"{len(message):,} characters"
