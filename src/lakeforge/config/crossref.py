"""Cross-reference checks across groups: names, columns, features, dates, durations, steps."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lakeforge.config.schema_data import (
    COLUMN_TYPES,
    NEW_COLUMN_POLICIES,
    ON_MISSING,
    SOURCE_FORMATS,
    WINDOW_FUNCTIONS,
)
from lakeforge.config.transforms import has_features_dir, scan_transforms
from lakeforge.config.values import (
    parse_duration,
    parse_positive_duration,
    regex_error,
)
from lakeforge.errors import did_you_mean

Report = Callable[[str, str], None]
MISSING = "???"
_DECIMAL = re.compile(r"^decimal\(\d+,\s*\d+\)$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Spark SQL words that are valid expressions on their own, not column names.
_SQL_NULLARY = ("current_date", "current_timestamp", "current_timezone", "null", "true", "false")
TIMEZONE_EXAMPLES = "UTC, America/New_York, Europe/Paris"


def _set(value: Any) -> bool:
    """True for a value that was given (not None, not ``???``)."""
    return value is not None and value != MISSING


def _choice(report: Report, key: str, value: Any, allowed: tuple[str, ...] | list[str], what: str) -> None:
    """Report a value not among ``allowed``."""
    if _set(value) and value not in allowed:
        report(key, f"unknown {what} '{value}'{did_you_mean(str(value), allowed)}; allowed: {', '.join(allowed)}")


def _list(value: Any) -> list[Any]:
    """A list value, or [] when missing."""
    return value if isinstance(value, list) else []


def _short(names: list[str], limit: int = 12) -> str:
    """Names joined for a message, truncated with an ellipsis."""
    shown = ", ".join(names[:limit])
    return shown + (", …" if len(names) > limit else "")


def _ref(report: Report, key: str, name: Any, known: list[str], what: str, where: str) -> bool:
    """Report ``name`` if it is not in ``known``; True when it is."""
    if not _set(name) or name in known:
        return _set(name)
    report(
        key,
        f"'{name}' is not a {what} of {where}{did_you_mean(str(name), known)} (known: {_short(known) or 'none'})",
    )
    return False


def _duration(report: Report, key: str, value: Any, *, positive: bool = True, signed: bool = False) -> int | None:
    """Parse a duration, reporting a bad one; returns seconds."""
    if not _set(value):
        return None
    try:
        return parse_positive_duration(value) if positive else parse_duration(value, signed=signed)
    except ValueError as exc:
        report(key, str(exc))
        return None


def columns_of(dataset: Any) -> list[str]:
    """Declared column names of a plain dataset config."""
    return [str(c.get("name")) for c in _list(dataset.get("columns")) if isinstance(c, dict)]


def check_datasets(cfg: dict[str, Any], report: Report) -> None:
    """Source format and location, column types, key and partition columns."""
    for name, ds in (cfg.get("dataset") or {}).items():
        base = f"dataset.{name}"
        src = ds.get("source") or {}
        fmt = src.get("format")
        _choice(report, f"{base}.source.format", fmt, SOURCE_FORMATS, "format")
        if fmt == "jdbc":
            if not _set(src.get("url")):
                report(f"{base}.source.url", "a jdbc source needs 'url'")
            if not (_set(src.get("table")) or _set(src.get("query"))):
                report(f"{base}.source.table", "a jdbc source needs 'table' or 'query'")
        elif fmt in SOURCE_FORMATS and not _set(src.get("path")):
            report(f"{base}.source.path", f"a {fmt} source needs 'path'")
        names = columns_of(ds)
        seen: set[str] = set()
        for i, col in enumerate(_list(ds.get("columns"))):
            ctype = str(col.get("type"))
            if _set(col.get("type")) and ctype not in COLUMN_TYPES and not _DECIMAL.match(ctype):
                report(
                    f"{base}.columns[{i}].type",
                    f"unknown column type '{ctype}'"
                    f"{did_you_mean(ctype, COLUMN_TYPES)}; allowed: {', '.join(COLUMN_TYPES)}, decimal(p,s)",
                )
            if col.get("name") in seen:
                report(f"{base}.columns[{i}].name", f"duplicate column name '{col.get('name')}'")
            seen.add(col.get("name"))
            _check_column_checks(report, f"{base}.columns[{i}]", col)
        where = f"dataset '{name}'"
        for i, pk in enumerate(_list(ds.get("primary_key"))):
            _ref(report, f"{base}.primary_key[{i}]", pk, names, "column", where)
        derived = [str(d.get("name")) for d in _list(ds.get("derived_columns"))]
        for i, part in enumerate(_list(ds.get("partition_by"))):
            _ref(report, f"{base}.partition_by[{i}]", part, names + derived, "column or derived column", where)
        _ref(report, f"{base}.event_time", ds.get("event_time"), names, "column", where)
        _check_dataset_level(report, base, ds, names, where)


def _check_column_checks(report: Report, key: str, col: dict[str, Any]) -> None:
    """Range bounds in order, a compilable regex, string checks only on strings."""
    checks = col.get("checks") or {}
    for low, high in (("ge", "le"), ("gt", "lt"), ("ge", "lt"), ("gt", "le")):
        lo, hi = checks.get(low), checks.get(high)
        if isinstance(lo, int | float) and isinstance(hi, int | float) and lo > hi:
            report(f"{key}.checks", f"{low}: {lo:g} is above {high}: {hi:g}; no value can pass")
    if _set(checks.get("regex")):
        problem = regex_error(str(checks["regex"]))
        if problem:
            report(f"{key}.checks.regex", f"'{checks['regex']}' is not a valid RE2 regular expression: {problem}")
    length = checks.get("str_length") or {}
    if _set(length.get("min")) and _set(length.get("max")) and length["min"] > length["max"]:
        report(f"{key}.checks.str_length", f"min {length['min']} is above max {length['max']}")
    string_only = [c for c in ("regex", "str_length") if _set(checks.get(c))]
    if string_only and col.get("type") not in ("string", None, MISSING):
        report(f"{key}.checks.{string_only[0]}", f"'{string_only[0]}' needs a string column, not {col.get('type')}")


def _check_dataset_level(report: Report, base: str, ds: dict[str, Any], names: list[str], where: str) -> None:
    """Unique key, row count bounds, freshness, bad-row budget and the new-column policy."""
    checks = ds.get("checks") or {}
    for i, key in enumerate(_list(checks.get("unique"))):
        _ref(report, f"{base}.checks.unique[{i}]", key, names, "column", where)
    rows = checks.get("row_count") or {}
    if _set(rows.get("min")) and _set(rows.get("max")) and rows["min"] > rows["max"]:
        report(f"{base}.checks.row_count", f"min {rows['min']} is above max {rows['max']}")
    fresh = checks.get("freshness")
    if isinstance(fresh, dict):
        _ref(report, f"{base}.checks.freshness.column", fresh.get("column"), names, "column", where)
        _duration(report, f"{base}.checks.freshness.max_age", fresh.get("max_age"))
    fraction = ds.get("max_bad_fraction")
    if isinstance(fraction, int | float) and not 0 <= fraction <= 1:
        report(f"{base}.max_bad_fraction", f"{fraction} is not a fraction between 0 and 1")
    _choice(report, f"{base}.new_columns", ds.get("new_columns"), NEW_COLUMN_POLICIES, "policy")


def feature_names(fs: dict[str, Any]) -> list[str]:
    """Every feature a feature set defines, in declaration order (duplicates kept)."""
    names = [f.get("name") for f in _list(fs.get("expressions")) + _list(fs.get("windows"))]
    for join in _list(fs.get("asof_joins")) + _list(fs.get("static_joins")):
        names += [f"{join.get('prefix') or ''}{c}" for c in _list(join.get("columns"))]
    for transform in _list(fs.get("transforms")):
        names += _list(transform.get("outputs"))
    return [n for n in names if _set(n)]


def _dataset_columns(cfg: dict[str, Any], report: Report, key: str, name: Any) -> list[str] | None:
    """Columns of a composed dataset, reporting an unknown dataset name."""
    datasets = cfg.get("dataset") or {}
    if not _ref(report, key, name, list(datasets), "composed dataset", "this pipeline"):
        return None
    return columns_of(datasets[name])


def label_is_not_a_feature(label: Any, fs_name: Any) -> str:
    """The message for a label used where a feature goes (a window, a transform, model.features)."""
    return f"'{label}' is the label of feature set '{fs_name}'; a label is never a feature"


def _label_name(fs: dict[str, Any]) -> Any:
    """The name of a feature set's label, or None."""
    label = fs.get("label")
    return label.get("name") if isinstance(label, dict) and _set(label.get("name")) else None


def _check_timezone(report: Report, key: str, value: Any) -> None:
    """An IANA time zone name that :class:`zoneinfo.ZoneInfo` knows (interpolations are left alone)."""
    text = str(value)
    if not _set(value) or "${" in text:
        return
    from zoneinfo import ZoneInfo, available_timezones

    try:
        ZoneInfo(text)
    except (KeyError, ValueError, OSError):
        report(
            key,
            f"unknown time zone '{text}'{did_you_mean(text, sorted(available_timezones()))}; "
            f"use an IANA name, e.g. {TIMEZONE_EXAMPLES}",
        )


def _check_joins(cfg: dict[str, Any], fs: dict[str, Any], spine_cols: list[str] | None, report: Report) -> None:
    """As-of and static joins: datasets, keys, time column, columns, lag, max age, missing-row policy."""
    for kind in ("asof_joins", "static_joins"):
        for i, join in enumerate(_list(fs.get(kind))):
            base = f"features.{kind}[{i}]"
            if kind == "asof_joins":
                _duration(report, f"{base}.lag", join.get("lag"), positive=False)
                _duration(report, f"{base}.max_age", join.get("max_age"))
            else:
                policy = join.get("on_missing")
                if _set(policy) and policy not in ON_MISSING:
                    report(
                        f"{base}.on_missing",
                        f"unknown policy '{policy}'{did_you_mean(str(policy), ON_MISSING)}; allowed: "
                        "null (keep the row, features null), drop (leave the row out), "
                        "fail (fail the build, naming the unmatched keys)",
                    )
            cols = _dataset_columns(cfg, report, f"{base}.dataset", join.get("dataset"))
            if cols is None:
                continue
            where = f"dataset '{join.get('dataset')}'"
            for j, key in enumerate(_list(join.get("keys"))):
                _ref(report, f"{base}.keys[{j}]", key, cols, "column", where)
                if spine_cols is not None:
                    _ref(report, f"{base}.keys[{j}]", key, spine_cols, "column", "the spine dataset")
            for j, col in enumerate(_list(join.get("columns"))):
                _ref(report, f"{base}.columns[{j}]", col, cols, "column", where)
            if kind == "asof_joins":
                _ref(report, f"{base}.event_time", join.get("event_time"), cols, "column", where)


def _check_window(
    cfg: dict[str, Any],
    fs: dict[str, Any],
    base: str,
    win: dict[str, Any],
    spine_cols: list[str] | None,
    report: Report,
) -> None:
    """One window: function, durations, source, column, ``by`` (source and spine), ``available_at``."""
    spine = fs.get("spine") or {}
    label = _label_name(fs)
    func = win.get("function")
    _choice(report, f"{base}.function", func, WINDOW_FUNCTIONS, "function")
    _duration(report, f"{base}.window", win.get("window"))
    _duration(report, f"{base}.lag", win.get("lag"), positive=False)
    if isinstance(win.get("by"), list) and not win["by"]:
        report(f"{base}.by", "a window needs 'by': the entity columns it aggregates over")
    column = win.get("column")
    is_label = label is not None and column == label
    if is_label:
        report(
            f"{base}.column",
            f"{label_is_not_a_feature(label, fs.get('name'))} (to use past outcomes, aggregate "
            "the source columns it is computed from, with a lag of at least label.available_after)",
        )
    source = win.get("source") if _set(win.get("source")) else spine.get("dataset")
    src_cols = spine_cols
    if _set(win.get("source")):
        src_cols = _dataset_columns(cfg, report, f"{base}.source", win.get("source"))
    if src_cols is None:
        return
    src_where = f"dataset '{source}'"
    exprs = [e.get("name") for e in _list(fs.get("expressions"))]
    if _set(column) and not is_label and _IDENTIFIER.match(str(column)):
        # A plain name must exist; anything else is a SQL expression over the source row.
        _ref(report, f"{base}.column", column, src_cols + exprs, "column or expression feature", src_where)
    elif not _set(column) and func not in ("count", None, MISSING):
        report(f"{base}.column", f"function '{func}' needs a 'column'")
    other_source = source != spine.get("dataset")
    for j, by in enumerate(_list(win.get("by"))):
        found = _ref(report, f"{base}.by[{j}]", by, src_cols, "column", src_where)
        if found and other_source and spine_cols is not None:
            _ref(
                report,
                f"{base}.by[{j}]",
                by,
                spine_cols,
                "column",
                f"spine dataset '{spine.get('dataset')}' (each spine row is matched to "
                f"rows of '{source}' by the window's 'by' columns, so both need them)",
            )
    available = win.get("available_at")
    if _set(available):
        text = str(available).strip()
        if _IDENTIFIER.match(text) and text.lower() not in _SQL_NULLARY:
            _ref(report, f"{base}.available_at", text, src_cols, "column", src_where)
    elif other_source:
        datasets = cfg.get("dataset") or {}
        if not _set((datasets.get(source) or {}).get("event_time")):
            report(
                f"{base}.available_at",
                f"dataset '{source}' declares no event_time, so nothing says when its rows become "
                f"known: set the window's available_at (a SQL expression over the row, e.g. a "
                f"timestamp column) or dataset.{source}.event_time",
            )


def _check_transforms(
    fs: dict[str, Any],
    spine_cols: list[str] | None,
    report: Report,
    project_root: Path | None,
) -> None:
    """Transform inputs are columns or features (not the label); names are declared in features/."""
    transforms = _list(fs.get("transforms"))
    label = _label_name(fs)
    defined = feature_names(fs)
    for i, transform in enumerate(transforms):
        for j, name in enumerate(_list(transform.get("inputs"))):
            key = f"features.transforms[{i}].inputs[{j}]"
            if label is not None and name == label:
                report(key, label_is_not_a_feature(label, fs.get("name")))
                continue
            _ref(
                report,
                key,
                name,
                (spine_cols or []) + defined,
                "column or feature",
                f"feature set '{fs.get('name')}'",
            )
    # Without a features/ folder (e.g. a conf/ copied alone) there is nothing to check names against.
    if not transforms or project_root is None or not has_features_dir(project_root):
        return
    scan = scan_transforms(project_root)
    for problem in scan.problems:
        report("features.transforms", str(problem))
    known = ", ".join(f"{name} ({where})" for name, where in sorted(scan.declared.items()))
    for i, transform in enumerate(transforms):
        name = transform.get("name")
        if _set(name) and name not in scan.declared:
            report(
                f"features.transforms[{i}].name",
                f"unknown transform '{name}'{did_you_mean(str(name), list(scan.declared))}; known transforms: "
                + (known or 'none (declare one in features/*.py with @transform("name"))'),
            )


def check_features(cfg: dict[str, Any], report: Report, project_root: Path | None = None) -> None:
    """Spine, entity, time zone, windows, joins, transforms, label and duplicate feature names.

    ``project_root`` (the folder holding conf/) is where transforms are looked up, in
    ``features/*.py``; without it transform names are not checked.
    """
    fs = cfg.get("features")
    if not isinstance(fs, dict):
        return
    spine = fs.get("spine") or {}
    spine_cols = _dataset_columns(cfg, report, "features.spine.dataset", spine.get("dataset"))
    where = f"spine dataset '{spine.get('dataset')}'"
    if isinstance(fs.get("entity"), list) and not fs["entity"]:
        report(
            "features.entity",
            "a feature set needs 'entity': the spine columns that identify what a row describes, "
            "e.g. [carrier, flight]",
        )
    if spine_cols is not None:
        _ref(report, "features.spine.event_time", spine.get("event_time"), spine_cols, "column", where)
        for i, key in enumerate(_list(fs.get("entity"))):
            _ref(report, f"features.entity[{i}]", key, spine_cols, "column", where)
    _check_timezone(report, "features.timezone", fs.get("timezone"))
    for i, win in enumerate(_list(fs.get("windows"))):
        _check_window(cfg, fs, f"features.windows[{i}]", win, spine_cols, report)
    _check_joins(cfg, fs, spine_cols, report)
    _check_transforms(fs, spine_cols, report, project_root)
    seen: set[str] = set()
    for name in feature_names(fs):
        if name in seen:
            report("features", f"duplicate feature name '{name}': every feature of a set needs a unique name")
        seen.add(name)
    label = fs.get("label")
    if isinstance(label, dict):
        _duration(report, "features.label.available_after", label.get("available_after"))
        if label.get("name") in seen:
            report("features.label.name", f"label '{label.get('name')}' has the name of a feature")
