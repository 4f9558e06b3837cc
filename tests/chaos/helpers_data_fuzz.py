"""Hostile CSV and JSON-lines inputs for the ingest fuzz test (tests/chaos/test_data_fuzz.py).

Every physical line a generator writes is a ``Line``: its bytes, the one tag it carries (``TAG`` and
six digits, found again in whichever table the row lands in; ``None`` for the few lines that
can't carry one) and what must happen to it: accepted with known typed values (``want``), or
quarantined with one of the ``expect`` check names among its reasons. Rows are also counted from
the file's bytes, independently of this list and of lakeforge (``count_*_records``), so the
generator is checked too.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "type": "long", "nullable": False},
    {"name": "tag", "type": "string", "nullable": False},
    {"name": "name", "type": "string", "checks": {"str_length": {"max": 10000}}},
    {"name": "qty", "type": "int", "checks": {"ge": 0}},
    {"name": "amount", "type": "double", "checks": {"ge": -1e15, "le": 1e15}},
    {"name": "ratio", "type": "float"},
    {"name": "price", "type": "decimal(12,2)"},
    {"name": "active", "type": "boolean"},
    {"name": "day", "type": "date"},
    {"name": "ts", "type": "timestamp"},
    {"name": "note", "type": "string"},
    {"name": "region", "type": "string"},
]
NAMES = [c["name"] for c in COLUMNS]
HEADER = ",".join(NAMES).encode()
TAG = re.compile(r"TAG\d{6}")
MALFORMED, DUPLICATE = "_row:malformed", "_key:unique"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Lower case only (no "TAG" can appear by chance), accents, CJK, emoji, punctuation CSV must quote.
ALPHABET = "abcdefghijklmnopqrstuvwxyz      éüßøñ中文字😀,;:!?()[]{}<>@#$%^&*_+=~|/"
REGIONS = ["north", "south", "east", "west"]
T = TypeVar("T")


@dataclass
class Line:
    """One physical line of a hostile file and what the ingest must make of it."""

    data: bytes
    kind: str
    tag: str | None
    expect: tuple[str, ...] = ()  # empty: accepted; else one of these names among the row's reasons
    want: dict[str, Any] = field(default_factory=dict)  # accepted: typed values raw.<dataset> must hold


@dataclass
class Good:
    """A valid row: each column's CSV text, JSON value and typed value."""

    text: dict[str, str]
    json: dict[str, Any]
    want: dict[str, Any]


class Fuzz:
    """A seeded source of tags, ids and valid rows."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._next = 0
        self._turns: dict[str, int] = {}

    def pick(self, key: str, options: Sequence[T]) -> T:
        """The next of ``options`` in turn (per ``key``), so every variant is written as rounds go by."""
        turn = self._turns.get(key, 0)
        self._turns[key] = turn + 1
        return options[turn % len(options)]

    def tag(self) -> str:
        self._next += 1
        return f"TAG{self._next:06d}"

    def text(self, low: int = 1, high: int = 24) -> str:
        return "".join(self.rng.choice(ALPHABET) for _ in range(self.rng.randint(low, high))).strip() or "x"

    def good(self, ident: int, tag: str) -> Good:
        rng = self.rng
        text: dict[str, str] = {"id": str(ident), "tag": tag}
        want: dict[str, Any] = {"id": ident, "tag": tag}
        text["name"] = want["name"] = self.text()
        qty = rng.randint(0, 2**31 - 1)
        text["qty"], want["qty"] = rng.choice([str(qty), f" {qty} ", f"+{qty}", f"00{qty}"]), qty
        amount = rng.choice([rng.uniform(-1e12, 1e12), rng.uniform(-1, 1), float(rng.randint(-99, 99))])
        text["amount"] = rng.choice([repr(amount), f"{amount:.6e}"])
        want["amount"] = float(text["amount"])
        ratio = rng.randint(0, 1023) / 1024  # exact in float32
        text["ratio"], want["ratio"] = repr(ratio), ratio
        price = Decimal(rng.randint(-(10**11) + 1, 10**11 - 1)) / 100
        text["price"], want["price"] = f"{price:.2f}", price
        active = rng.choice([("true", True), ("false", False), ("TRUE", True), ("1", True), ("0", False)])
        text["active"], want["active"] = active
        day = date(1900, 1, 1) + timedelta(days=rng.randint(0, 73000))
        text["day"], want["day"] = day.isoformat(), day
        moment = EPOCH + timedelta(seconds=rng.randint(0, 4_000_000_000), microseconds=rng.choice([0, 1, 250000]))
        text["ts"] = rng.choice(
            [
                moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                moment.strftime("%Y-%m-%d %H:%M:%S.%f"),
                (moment + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%f+02:00"),
            ]
        )
        want["ts"] = (moment - EPOCH) // timedelta(microseconds=1)
        note = rng.choice([None, self.text(0, 40)]) or None
        text["note"], want["note"] = note or "", note
        text["region"] = want["region"] = rng.choice(REGIONS)
        values = {k: want[k] for k in ("id", "tag", "name", "qty", "amount", "ratio", "active", "note", "region")}
        as_json = {**values, "price": text["price"], "day": text["day"], "ts": text["ts"]}
        return Good(text, as_json, want)


# ---- CSV (Spark's defaults: quote '"', escape '\\'; good values carry neither) -------------------------


def csv_field(value: str) -> str:
    return f'"{value}"' if any(ch in value for ch in ',\r\n"') or value != value.strip() else value


def csv_bytes(text: dict[str, str], quote: Callable[[str], str] = csv_field) -> bytes:
    return ",".join(quote(text[n]) for n in NAMES).encode("utf-8")


def _with(good: Good, **values: str) -> dict[str, str]:
    return {**good.text, **values}


def csv_lines(fz: Fuzz, n_rounds: int) -> tuple[list[Line], int]:
    """Good rows interleaved with every hostile CSV kind, ``n_rounds`` times; also the blank lines written."""
    lines: list[Line] = []
    blanks = 0
    ident = 1_000
    for _ in range(n_rounds):
        for make in CSV_KINDS:
            for _ in range(3):  # some good rows between the bad ones
                ident += 1
                tag = fz.tag()
                good = fz.good(ident, tag)
                lines.append(Line(csv_bytes(good.text), "good", tag, want=good.want))
            ident += 10
            lines += make(fz, ident)
        blank = fz.rng.choice([b"", b"   ", b"\t", b" \t ", b"\x00", b"\x01\x1f"])
        lines.append(Line(blank, "blank", None))
        blanks += 1
    return lines, blanks


def _bad(fz: Fuzz, ident: int, kind: str, expect: tuple[str, ...], **values: str) -> list[Line]:
    tag = fz.tag()
    good = fz.good(ident, tag)
    return [Line(csv_bytes(_with(good, **values)), kind, tag, expect)]


def _csv_too_few(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    fields = csv_bytes(fz.good(ident, tag).text).split(b",")
    keep = fz.rng.randint(2, len(NAMES) - 1)
    return [Line(b",".join(fields[:keep]), "too few fields", tag, (MALFORMED,))]


def _csv_too_many(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    extra = fz.pick("_csv_too_many.1", [1, 2, 7, 500, 20_000])  # Spark's CSV parser stops at 20,480 (maxColumns)
    data = csv_bytes(fz.good(ident, tag).text) + b",x" * extra
    return [Line(data, "too many fields", tag, (MALFORMED,))]


def _csv_unterminated_mid(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    text = _with(fz.good(ident, tag), name='"' + fz.text())
    line = ",".join(v if n == "name" else csv_field(v) for n, v in ((n, text[n]) for n in NAMES)).encode()
    return [Line(line, "unterminated quote", tag, (MALFORMED,))]


def _csv_unterminated_last(fz: Fuzz, ident: int) -> list[Line]:
    # An open quote in the last field runs to the end of the line: univocity (like Python's csv)
    # reads the rest of the line as the value. The test pins that reading down.
    tag = fz.tag()
    good = fz.good(ident, tag)
    text = _with(good, region='"north')
    line = ",".join(v if n == "region" else csv_field(v) for n, v in ((n, text[n]) for n in NAMES)).encode()
    return [Line(line, "unterminated quote, last field", tag, want={**good.want, "region": "north"})]


def _csv_quote_inside(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = fz.good(ident, tag)
    name = fz.text(1, 5).replace(",", "") + '"' + fz.text(1, 5).replace(",", "")
    text = _with(good, name=name.strip() or 'a"b')
    line = ",".join(v if n == "name" else csv_field(v) for n, v in ((n, text[n]) for n in NAMES)).encode()
    return [Line(line, "quote inside a field", tag, want={**good.want, "name": text["name"]})]


def _csv_quote_then_text(fz: Fuzz, ident: int) -> list[Line]:
    # Univocity keeps such a field as written, quotes and all (Python's csv would read 'abcd').
    tag = fz.tag()
    good = fz.good(ident, tag)
    text = _with(good, name='"ab"cd')
    line = ",".join(v if n == "name" else csv_field(v) for n, v in ((n, text[n]) for n in NAMES)).encode()
    return [Line(line, "text after a closing quote", tag, want={**good.want, "name": '"ab"cd'})]


def _csv_embedded_newline(fz: Fuzz, ident: int) -> list[Line]:
    # Lines are records (no multiLine): a quoted newline cuts the record in two broken lines.
    first, second = fz.tag(), fz.tag()
    text = _with(fz.good(ident, first), name="split")
    head = ",".join(csv_field(text[n]) for n in NAMES[:2]) + ',"ab'
    tail = f'{second} cd",' + ",".join(csv_field(text[n]) for n in NAMES[3:])
    return [
        Line(head.encode(), "newline in a quoted field", first, (MALFORMED,)),
        Line(tail.encode(), "newline in a quoted field", second, (MALFORMED,)),
    ]


def _csv_lone_cr(fz: Fuzz, ident: int) -> list[Line]:
    # A bare CR ends a line for Spark's (Hadoop's) line reader, as it does for Python's splitlines.
    first, second = fz.tag(), fz.tag()
    text = fz.good(ident, first).text
    head = ",".join(csv_field(text[n]) for n in NAMES[:2]) + ",ab"
    tail = f"{second}cd," + ",".join(csv_field(text[n]) for n in NAMES[3:])
    return [
        Line(head.encode(), "bare CR", first, (MALFORMED,)),
        Line(tail.encode(), "bare CR", second, (MALFORMED,)),
    ]


INVALID_UTF8 = [
    b"\xff",
    b"\xfe\xff",
    b"\xc3\x28",
    b"\xe2\x82",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\x80",
]


def _csv_invalid_utf8(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    text = fz.good(ident, tag).text
    column = fz.pick("_csv_invalid_utf8.1", ["name", "note", "qty"])
    text[column] = "a" if column != "qty" else "12"
    raw = csv_bytes(text)
    cut = raw.index(b"," + text[column].encode() + b",", raw.index(tag.encode())) + 2
    data = raw[:cut] + fz.pick("_csv_invalid_utf8.2", INVALID_UTF8) + raw[cut:]
    return [Line(data, "invalid UTF-8", tag, (f"{column}:encoding" if column != "qty" else "qty:type",))]


NON_FINITE = ["NaN", "nan", "inf", "-inf", "Infinity", "-Infinity", "1e309", "-1e309", "1E400"]


def _csv_non_finite(fz: Fuzz, ident: int) -> list[Line]:
    if fz.pick("_csv_non_finite.branch", [True, False, False]):
        return _bad(
            fz, ident, "NaN/inf", ("ratio:finite",), ratio=fz.pick("_csv_non_finite.1", ["NaN", "1e39", "-3.5e38"])
        )
    return _bad(fz, ident, "NaN/inf", ("amount:finite",), amount=fz.pick("_csv_non_finite.2", NON_FINITE))


def _csv_negative_zero(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = fz.good(ident, tag)
    text = _with(good, amount="-0.0", ratio="-0.0", price="-0.00")
    want = {**good.want, "amount": -0.0, "ratio": -0.0, "price": Decimal("0.00")}
    return [Line(csv_bytes(text), "-0.0", tag, want=want)]


def _csv_huge_int(fz: Fuzz, ident: int) -> list[Line]:
    if fz.pick("_csv_huge_int.branch", [True, False, False]):
        big = fz.pick("_csv_huge_int.1", ["9223372036854775808", "-9223372036854775809", "1" + "0" * 40])
        return _bad(fz, ident, "integer overflow", ("id:type",), id=big)
    big = fz.pick("_csv_huge_int.2", ["2147483648", "-2147483649", "99999999999999999999", "1.0", "1e3", "0x10"])
    return _bad(fz, ident, "integer overflow", ("qty:type",), qty=big)


def _csv_extreme_ok(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = fz.good(ident, tag)
    text = _with(good, qty="2147483647", amount="1e15", price="9999999999.99", ratio="3.0e-39")
    want = {**good.want, "qty": 2**31 - 1, "amount": 1e15, "price": Decimal("9999999999.99")}
    want.pop("ratio")  # a float32 subnormal: whatever rounding, it is finite
    return [Line(csv_bytes(text), "extreme but valid", tag, want=want)]


def _csv_long_decimal(fz: Fuzz, ident: int) -> list[Line]:
    choice = fz.pick("_csv_long_decimal.branch", range(3))
    if choice == 0:
        value = fz.pick(
            "_csv_long_decimal.1", ["12.345", "0.0000000000000000000000000000001", "1.999", "12345678901.5"]
        )
        return _bad(fz, ident, "long decimal", ("price:type",), price=value)
    if choice == 1:
        return _bad(fz, ident, "long decimal", ("amount:le(1e+15)",), amount="1.7976931348623157e308")
    tag = fz.tag()
    good = fz.good(ident, tag)
    digits = fz.pick(
        "_csv_long_decimal.2",
        ["0.1000000000000000055511151231257827021181583404541015625", "3." + "14159265358979" * 5],
    )
    return [
        Line(csv_bytes(_with(good, amount=digits)), "long decimal", tag, want={**good.want, "amount": float(digits)})
    ]


def _csv_duplicate_key(fz: Fuzz, ident: int) -> list[Line]:
    out = []
    for written in (str(ident), f"00{ident}"):  # the same key, written two ways
        tag = fz.tag()
        out.append(Line(csv_bytes(_with(fz.good(ident, tag), id=written)), "duplicate key", tag, (DUPLICATE,)))
    return out


def _csv_long_string(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = fz.good(ident, tag)
    column, size = fz.pick(
        "_csv_long_string.1", [("name", 10_000), ("name", 10_001), ("note", 10_000), ("note", 25_000)]
    )
    value = "".join(fz.rng.choice(ALPHABET.replace(" ", "")) for _ in range(size))
    line = csv_bytes(_with(good, **{column: value}))
    if column == "name" and size > 10_000:
        return [Line(line, "10,000-character string", tag, ("name:str_length(..10000)",))]
    return [Line(line, "10,000-character string", tag, want={**good.want, column: value})]


def _csv_crlf(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = fz.good(ident, tag)
    return [Line(csv_bytes(good.text) + b"\r", "CRLF", tag, want=good.want)]  # + "\n" when written


def _csv_odd_chars(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = fz.good(ident, tag)
    odd = fz.pick(
        "_csv_odd_chars.1",
        ["a\ufeffb", "nul\x00here", "ctl\x01\x1f\x7f", "tab\there", "zero\u200bwidth", "rtl\u202eltr"],
    )
    return [
        Line(csv_bytes(_with(good, note=odd)), "control and format characters", tag, want={**good.want, "note": odd})
    ]


def _csv_replacement_char(fz: Fuzz, ident: int) -> list[Line]:
    # A literal U+FFFD is indistinguishable from a byte Spark could not decode: quarantined.
    return _bad(fz, ident, "literal U+FFFD", ("name:encoding",), name="bad\ufffdchar")


# (value, the check it fails): dates Spark can't parse, or parses by dropping what follows, or
# outside years 1-9999.
BAD_DAYS = [
    ("2013-02-30", "day:type"),
    ("2013-13-01", "day:type"),
    ("2013-01-01 lol", "day:type"),
    ("2013-01-01T25:00", "day:type"),
    ("13/01/2013", "day:type"),
    ("2013-01-01T06:00:00Z junk", "day:type"),
    ("+10000-01-01", "day:range"),
    ("10000-01-01", "day:range"),
    ("0000-01-01", "day:range"),
    ("-0001-01-01", "day:range"),
]
BAD_TIMES = [
    ("2013-01-01T24:00:01", "ts:type"),
    ("2013-01-01 06:00:00+25:00", "ts:type"),
    ("never", "ts:type"),
    ("2013-01-01T06:00:00Z junk", "ts:type"),
    ("+10000-01-01T00:00:00Z", "ts:range"),
    ("0000-06-01T00:00:00Z", "ts:range"),
    ("-0001-01-01 00:00:00", "ts:range"),
]


def _csv_bad_date(fz: Fuzz, ident: int) -> list[Line]:
    value, check = fz.pick("_csv_bad_date", BAD_DAYS)
    return _bad(fz, ident, f"bad date ({check.split(':')[1]})", (check,), day=value)


def _csv_bad_timestamp(fz: Fuzz, ident: int) -> list[Line]:
    value, check = fz.pick("_csv_bad_timestamp", BAD_TIMES)
    return _bad(fz, ident, f"bad timestamp ({check.split(':')[1]})", (check,), ts=value)


def _csv_header_again(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    return [Line(HEADER.replace(b"tag", tag.encode(), 1), "header again", tag, ("id:not_null", "id:type"))]


def _csv_only_delimiters(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    return [Line(b"," + tag.encode() + b"," * (len(NAMES) - 2), "empty fields", tag, ("id:not_null",))]


def _csv_number_suffix(fz: Fuzz, ident: int) -> list[Line]:
    return _bad(
        fz,
        ident,
        "Java number suffix",
        ("amount:type",),
        amount=fz.pick("_csv_number_suffix.1", ["1d", "2.5f", "3D", "7F"]),
    )


def _csv_bad_bool(fz: Fuzz, ident: int) -> list[Line]:
    return _bad(
        fz, ident, "bad boolean", ("active:type",), active=fz.pick("_csv_bad_bool.1", ["maybe", "2", "tru", "-1"])
    )


def _csv_partition_value(fz: Fuzz, ident: int) -> list[Line]:
    # The raw table is partitioned by region: hostile values become folder names.
    tag = fz.tag()
    good = fz.good(ident, tag)
    region = fz.pick(
        "_csv_partition_value.1", ["a/b", "../up", "x=y", "50%", "new\\line", " spaced ", "north\u00a0", "ünï", "?*:"]
    )
    line = csv_bytes(_with(good, region=region))
    return [Line(line, "hostile partition value", tag, want={**good.want, "region": region})]


def _csv_unusable_partition_value(fz: Fuzz, ident: int) -> list[Line]:
    # Values no folder can hold, or that read back as null: quarantined, the rest of the batch written.
    region = fz.pick(
        "_csv_unusable_partition_value", ["r" * 300, "r" * 10_000, "nul\x00", "__HIVE_DEFAULT_PARTITION__"]
    )
    return _bad(fz, ident, "unusable partition value", ("region:partition",), region=region)


CSV_KINDS: list[Callable[[Fuzz, int], list[Line]]] = [
    _csv_too_few,
    _csv_too_many,
    _csv_unterminated_mid,
    _csv_unterminated_last,
    _csv_quote_inside,
    _csv_quote_then_text,
    _csv_embedded_newline,
    _csv_lone_cr,
    _csv_invalid_utf8,
    _csv_non_finite,
    _csv_negative_zero,
    _csv_huge_int,
    _csv_extreme_ok,
    _csv_long_decimal,
    _csv_duplicate_key,
    _csv_long_string,
    _csv_crlf,
    _csv_odd_chars,
    _csv_replacement_char,
    _csv_bad_date,
    _csv_bad_timestamp,
    _csv_header_again,
    _csv_only_delimiters,
    _csv_number_suffix,
    _csv_bad_bool,
    _csv_partition_value,
    _csv_unusable_partition_value,
]


def csv_file(lines: list[Line], bom: bool) -> bytes:
    """Header and lines, LF-terminated (a CRLF line ends in CR already)."""
    return (b"\xef\xbb\xbf" if bom else b"") + HEADER + b"\n" + b"".join(line.data + b"\n" for line in lines)


def count_csv_records(data: bytes) -> int:
    """Records of a line-mode CSV file: lines (LF, CRLF or bare CR) after the header, less blank lines
    (nothing but characters up to U+0020, which carry no field)."""
    lines = re.split(rb"\r\n|\r|\n", data)
    if lines and lines[-1] == b"":
        lines.pop()
    return sum(1 for line in lines[1:] if any(byte > 0x20 for byte in line))


# ---- JSON lines ---------------------------------------------------------------------------------------


def json_dump(values: dict[str, Any], fz: Fuzz) -> bytes:
    items = list(values.items())
    fz.rng.shuffle(items)
    return json.dumps(dict(items), ensure_ascii=fz.rng.random() < 0.5).encode("utf-8")


def json_lines(fz: Fuzz, n_rounds: int) -> tuple[list[Line], int]:
    """Good objects interleaved with every hostile JSON kind, ``n_rounds`` times; also the blank lines."""
    lines: list[Line] = []
    blanks = 0
    ident = 500_000
    for _ in range(n_rounds):
        for make in JSON_KINDS:
            for _ in range(3):
                ident += 1
                tag = fz.tag()
                good = fz.good(ident, tag)
                lines.append(Line(json_dump(good.json, fz), "good", tag, want=good.want))
            ident += 10
            lines += make(fz, ident)
        lines.append(Line(fz.rng.choice([b"", b"  ", b"\t", b" \t "]), "blank", None))
        blanks += 1
    return lines, blanks


def _jbad(fz: Fuzz, ident: int, kind: str, expect: tuple[str, ...], **values: Any) -> list[Line]:
    tag = fz.tag()
    good = fz.good(ident, tag)
    return [Line(json_dump({**good.json, **values}, fz), kind, tag, expect)]


def _jok(fz: Fuzz, ident: int, kind: str, want: dict[str, Any], **values: Any) -> list[Line]:
    tag = fz.tag()
    good = fz.good(ident, tag)
    return [Line(json_dump({**good.json, **values}, fz), kind, tag, want={**good.want, **want})]


def _json_not_an_object(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    data = fz.pick(
        "_json_not_an_object.1", [f'["{tag}", 1]', f'"{tag}"', f'[{{"tag": "{tag}"}}]', f'{{"a": 1}}[ "{tag}" ]']
    )
    return [Line(data.encode(), "not an object", tag, (MALFORMED,))]


def _json_scalar(fz: Fuzz, ident: int) -> list[Line]:
    data = fz.pick("_json_scalar.1", ["42", "null", "true", "[]", "\x00", "-", '"'])
    return [Line(data.encode(), "not an object (untagged)", None, (MALFORMED,))]


def _json_empty_object(fz: Fuzz, ident: int) -> list[Line]:
    return [Line(b"{}", "empty object (untagged)", None, ("id:not_null", "tag:not_null"))]


def _json_truncated(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = fz.good(ident, tag)
    data = json.dumps({"tag": tag, **{k: v for k, v in good.json.items() if k != "tag"}}).encode()
    start = data.index(tag.encode()) + len(tag) + 1
    return [Line(data[: fz.rng.randint(start, len(data) - 1)], "truncated", tag, (MALFORMED,))]


def _json_wrong_type(fz: Fuzz, ident: int) -> list[Line]:
    choice = fz.pick("_json_wrong_type.branch", range(7))
    if choice == 0:
        return _jbad(
            fz,
            ident,
            "wrong JSON type",
            ("qty:type",),
            qty=fz.pick("_json_wrong_type.1", ["twelve", {"v": 1}, [1, 2], True, 1.5]),
        )
    if choice == 1:
        nested = fz.pick("_json_wrong_type.2", [{"nested": {"deep": [1, 2]}}, [1, "a"], [], {}])
        return _jbad(fz, ident, "wrong JSON type", ("name:type",), name=nested)
    if choice == 2:
        return _jbad(
            fz,
            ident,
            "wrong JSON type",
            ("id:type",),
            id=fz.pick("_json_wrong_type.3", [1.5, "x1", [ident], {"id": ident}]),
        )
    if choice == 3:
        return _jok(fz, ident, "number as string", {"qty": 12, "amount": 1.5}, qty="12", amount="1.5")
    if choice == 4:
        return _jok(fz, ident, "number where a string is declared", {"name": "12345"}, name=12345)
    if choice == 5:
        return _jbad(
            fz,
            ident,
            "wrong JSON type",
            ("day:type", "day:range"),
            day=fz.pick("_json_wrong_type.4", [20130101, True, {"y": 2013}]),
        )
    return _jbad(
        fz, ident, "wrong JSON type", ("active:type",), active=fz.pick("_json_wrong_type.5", ["maybe", 2, [True]])
    )


def _json_duplicate_field(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = json_dump(fz.good(ident, tag).json, fz)
    extra = fz.pick(
        "_json_duplicate_field.1",
        [b', "qty": -1}', b', "name": "other"}', f', "tag": "{tag}"}}'.encode(), b', "QTY": 5, "qty": 5}'],
    )
    return [Line(good[:-1] + extra, "duplicate field", tag, (MALFORMED,))]


def _json_non_finite(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = json_dump({**fz.good(ident, tag).json, "amount": 0.5}, fz)
    token = fz.pick("_json_non_finite.1", [b"NaN", b"Infinity", b"-Infinity", b"1e309", b"-1e400"])
    return [Line(good.replace(b'"amount": 0.5', b'"amount": ' + token), "NaN/inf", tag, ("amount:finite",))]


def _json_negative_zero(fz: Fuzz, ident: int) -> list[Line]:
    return _jok(fz, ident, "-0.0", {"amount": -0.0, "ratio": -0.0}, amount=-0.0, ratio=-0.0)


def _json_huge_number(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = json_dump({**fz.good(ident, tag).json, "qty": 7}, fz)
    token = fz.pick("_json_huge_number.1", [b"2147483648", b"99999999999999999999999", b"9" * 2000, b"1e3"])
    return [Line(good.replace(b'"qty": 7', b'"qty": ' + token), "huge number", tag, ("qty:type", MALFORMED))]


def _json_long_decimal(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = json_dump({**fz.good(ident, tag).json, "price": 7}, fz)
    token = fz.pick("_json_long_decimal.1", [b"12.345", b"0.0000000000000000000000000000001", b"123456789012345.5"])
    return [Line(good.replace(b'"price": 7', b'"price": ' + token), "long decimal", tag, ("price:type",))]


def _json_invalid_utf8(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = json_dump({**fz.good(ident, tag).json, "name": "abc"}, fz)
    data = good.replace(b'"abc"', b'"a' + fz.pick("_json_invalid_utf8.1", INVALID_UTF8) + b'c"')
    return [Line(data, "invalid UTF-8", tag, ("name:encoding", MALFORMED))]


def _json_surrogates(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = json_dump({**fz.good(ident, tag).json, "name": "abc"}, fz)
    if fz.pick("_json_surrogates.branch", [True, False, False]):
        data = good.replace(b'"abc"', b'"a\\ud83d\\ude00c"')  # a valid pair: an emoji
        return [Line(data, "escaped surrogate pair", tag, want={"tag": tag, "name": "a😀c"})]
    lone = fz.pick("_json_surrogates.1", [b"\\ud800", b"\\udfff", b"\\ud83d\\u0041", b"\\ude00\\ud83d"])
    return [Line(good.replace(b'"abc"', b'"a' + lone + b'c"'), "lone surrogate", tag, (MALFORMED,))]


def _json_long_string(fz: Fuzz, ident: int) -> list[Line]:
    column, size = fz.pick(
        "_json_long_string.1", [("name", 10_000), ("name", 10_001), ("note", 10_000), ("note", 30_000)]
    )
    value = "".join(fz.rng.choice(ALPHABET) for _ in range(size))
    if column == "name" and size > 10_000:
        return _jbad(fz, ident, "10,000-character string", ("name:str_length(..10000)",), name=value)
    return _jok(fz, ident, "10,000-character string", {column: value}, **{column: value})


def _json_crlf(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = fz.good(ident, tag)
    return [Line(json_dump(good.json, fz) + b"\r", "CRLF", tag, want=good.want)]


def _json_trailing(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = json_dump(fz.good(ident, tag).json, fz)
    rest = fz.pick("_json_trailing.1", [b' {"id": 1}', b"garbage", b",", b"}", b"]", b' {"id": 2, "tag": "x"}'])
    return [Line(good + rest, "content after the object", tag, (MALFORMED,))]


def _json_missing_fields(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = fz.good(ident, tag)
    if fz.pick("_json_missing_fields.branch", [True, False, False]):
        values = {k: v for k, v in good.json.items() if k != "id"}
        return [Line(json_dump(values, fz), "missing field", tag, ("id:not_null",))]
    values = {k: v for k, v in good.json.items() if k not in ("note", "name")}
    return [Line(json_dump(values, fz), "missing field", tag, want={**good.want, "note": None, "name": None})]


def _json_extra_field(fz: Fuzz, ident: int) -> list[Line]:
    # new_columns: ignore, so an undeclared field (even the declared name in another case) is dropped.
    tag = fz.tag()
    good = fz.good(ident, tag)
    extra = fz.pick("_json_extra_field.1", [{"extra": [1, {"a": None}]}, {"ID": 5}, {"": "empty key"}, {"tag ": "x"}])
    return [Line(json_dump({**good.json, **extra}, fz), "undeclared field", tag, want=good.want)]


def _json_deep(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = json_dump({**fz.good(ident, tag).json, "note": 0}, fz)
    depth = fz.pick("_json_deep.1", [50, 5_000])
    data = good.replace(b'"note": 0', b'"note": ' + b"[" * depth + b"]" * depth)
    return [Line(data, "deep nesting", tag, ("note:type", MALFORMED))]


def _json_pretty(fz: Fuzz, ident: int) -> list[Line]:
    # An object spread over lines: every line on its own is broken.
    tag = fz.tag()
    text = json.dumps({"tag": tag, "id": ident}, indent=1).encode().split(b"\n")
    return [
        Line(part, "object over several lines", tag if tag.encode() in part else None, (MALFORMED,)) for part in text
    ]


def _json_single_quotes(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    return [Line(f"{{'id': {ident}, 'tag': '{tag}'}}".encode(), "single quotes", tag, (MALFORMED,))]


def _json_control_chars(fz: Fuzz, ident: int) -> list[Line]:
    tag = fz.tag()
    good = json_dump({**fz.good(ident, tag).json, "note": "abc"}, fz)
    if fz.pick("_json_control_chars.branch", [True, False, False]):
        data = good.replace(b'"abc"', b'"a\\u0000b\\u001fc\\t"')
        return [Line(data, "escaped control characters", tag, want={"tag": tag, "note": "a\x00b\x1fc\t"})]
    return [Line(good.replace(b'"abc"', b'"a\tb"'), "raw tab in a string", tag, (MALFORMED,))]


def _json_duplicate_key(fz: Fuzz, ident: int) -> list[Line]:
    out = []
    for written in (ident, str(ident)):
        tag = fz.tag()
        out.append(Line(json_dump({**fz.good(ident, tag).json, "id": written}, fz), "duplicate key", tag, (DUPLICATE,)))
    return out


def _json_empty_strings(fz: Fuzz, ident: int) -> list[Line]:
    # "" is a value in JSON (not null as in CSV); as a partition value it would read back as null.
    if fz.pick("_json_empty_strings.branch", [True, False, False]):
        return _jok(fz, ident, "empty strings", {"note": "", "name": ""}, note="", name="")
    return _jbad(fz, ident, "empty partition value", ("region:partition",), region="")


JSON_KINDS: list[Callable[[Fuzz, int], list[Line]]] = [
    _json_not_an_object,
    _json_scalar,
    _json_empty_object,
    _json_truncated,
    _json_wrong_type,
    _json_duplicate_field,
    _json_non_finite,
    _json_negative_zero,
    _json_huge_number,
    _json_long_decimal,
    _json_invalid_utf8,
    _json_surrogates,
    _json_long_string,
    _json_crlf,
    _json_trailing,
    _json_missing_fields,
    _json_extra_field,
    _json_deep,
    _json_pretty,
    _json_single_quotes,
    _json_control_chars,
    _json_duplicate_key,
    _json_empty_strings,
]


def json_file(lines: list[Line], bom: bool) -> bytes:
    return (b"\xef\xbb\xbf" if bom else b"") + b"".join(line.data + b"\n" for line in lines)


def count_json_records(data: bytes) -> int:
    """Records of a JSON-lines file: lines (LF, CRLF or bare CR), less those of JSON whitespace only."""
    lines = re.split(rb"\r\n|\r|\n", data.removeprefix(b"\xef\xbb\xbf"))
    if lines and lines[-1] == b"":
        lines.pop()
    return sum(1 for line in lines if line.strip(b" \t"))


# ---- multi-line CSV (RFC 4180 quoting: escape '"', quoted newlines) --------------------------------


def rfc_field(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(ch in value for ch in ',\r\n"') else value


def multiline_csv(fz: Fuzz, n_rows: int) -> tuple[bytes, list[Line]]:
    """A multiLine CSV: good rows whose notes hold quotes, LF and CRLF; a few broken ones."""
    lines: list[Line] = []
    for i in range(n_rows):
        tag = fz.tag()
        good = fz.good(2_000_000 + i, tag)
        if i % 4 == 0:
            note = f'he said "hi",{fz.text()}\n{fz.text()}\r\nend'
            good.text["note"] = note
            good.want["note"] = note
        lines.append(Line(csv_bytes(good.text, rfc_field), "quoted newlines", tag, want=good.want))
        if i % 10 == 5:
            bad = fz.tag()
            lines.append(Line(f"{2_100_000 + i},{bad},too,few".encode(), "too few fields", bad, (MALFORMED,)))
    return HEADER + b"\n" + b"".join(line.data + b"\n" for line in lines), lines


def count_rfc_records(data: bytes) -> int:
    """Records of an RFC 4180 CSV (quoted newlines inside records), by Python's csv module."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8", "replace"), newline="")))
    return sum(1 for row in rows[1:] if row)


def kind_counts(lines: list[Line]) -> Counter[str]:
    return Counter(line.kind for line in lines if line.kind not in ("good", "blank"))
