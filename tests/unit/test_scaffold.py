"""`lakeforge init`'s inference (types, nulls, keys, event time, label) and the files it writes, no JVM."""

from __future__ import annotations

import gzip
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from lakeforge.config import check_all, load_config
from lakeforge.errors import UsageError
from lakeforge.pipeline.csv_profile import identifier, profile_csv
from lakeforge.pipeline.scaffold import choose_label, init_pipeline, next_steps, plan_pipeline

REPO_CONF = Path(__file__).resolve().parents[2] / "conf"


def _csv(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _sales(tmp_path: Path, days: int = 120, name: str = "sales.csv") -> Path:
    """Daily sales of three stores: key (day, store), a numeric outcome, a 0/1 column, some NA."""
    lines = ["Sold On,Store,Units,Price ($),Promo,Returned"]
    start = date(2024, 1, 1)
    for i in range(days):
        for j, store in enumerate(("north", "south", "east")):
            units = (i * 7 + j * 13) % 50
            price = "NA" if (i + j) % 17 == 0 else f"{9.5 + j + (i % 5) / 10:.2f}"
            promo = "true" if (i + j) % 4 == 0 else "false"
            lines.append(f"{start + timedelta(days=i)},{store},{units},{price},{promo},{(i + j) % 2}")
    return _csv(tmp_path, "\n".join(lines) + "\n", name)


def test_types_nulls_and_names_are_read_as_the_ingest_casts_them(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "Order ID,Sold At,Amount ($),big,Flag,mixed,^IDX,empty\n"
        "1,2024-01-01 10:00:00,1.5,3000000000,true,1,10,\n"
        "2,2024-01-01T11:30:00Z,NA,3000000001,FALSE,x,11,\n"
        "3,2024-01-02 09:00:00,2e3,3000000002,true,2,12,\n",
    )
    profile = profile_csv(path)
    kinds = {c.name: (c.type, c.nulls, c.source) for c in profile.columns}
    assert kinds == {
        "order_id": ("int", 0, "Order ID"),
        "sold_at": ("timestamp", 0, "Sold At"),
        "amount": ("double", 1, "Amount ($)"),
        "big": ("long", 0, "big"),
        "flag": ("boolean", 0, "Flag"),
        "mixed": ("string", 0, "mixed"),
        "idx": ("int", 0, "^IDX"),
        "empty": ("string", 3, "empty"),
    }
    assert profile.options == {"header": "true", "nullValue": "NA"}
    assert profile.primary_key == ("order_id",)
    assert profile.event_time == "sold_at"
    assert profile.column("Amount ($)").minimum == 1.5 and profile.column("amount").maximum == 2000.0


def test_identifiers_from_headers() -> None:
    assert [identifier(h) for h in ("^GSPC", "Adj. Close*", "OrderID", "2nd", "  ")] == [
        "gspc",
        "adj_close",
        "order_id",
        "c_2nd",
        "column",
    ]


def test_key_guess_combines_the_event_time_with_what_repeats(tmp_path: Path) -> None:
    profile = profile_csv(_sales(tmp_path))
    assert profile.primary_key == ("sold_on", "store")
    assert profile.event_time == "sold_on"
    assert profile.column("sold_on").type == "date"
    assert profile.column("price").nulls > 0 and profile.column("store").nulls == 0


def test_no_key_when_rows_repeat(tmp_path: Path) -> None:
    path = _csv(tmp_path, "day,kind,value\n2024-01-01,a,1\n2024-01-01,a,1\n2024-01-02,b,2\n")
    assert profile_csv(path).primary_key == ()


def test_event_time_prefers_a_complete_column_and_time_overrides_it(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "id,shipped,created,note\n1,,2024-01-01,a\n2,2024-01-05,2024-01-02,b\n3,2024-01-06,2024-01-03,c\n",
    )
    assert profile_csv(path).event_time == "created"
    assert profile_csv(path, event_time="shipped").event_time == "shipped"
    with pytest.raises(UsageError, match=r"--time 'note': values like 'a' are not ISO dates or timestamps"):
        profile_csv(path, event_time="note")


def test_dialect_comment_lines_semicolons_and_gzip(tmp_path: Path) -> None:
    text = "# exported 2024-02-01\n# source: a shop\nday;units\n2024-01-01;3\n2024-01-02;4\n"
    plain = profile_csv(_csv(tmp_path, text))
    assert plain.options == {"header": "true", "sep": ";", "comment": "#"}
    assert [c.type for c in plain.columns] == ["date", "int"]
    packed = tmp_path / "data.csv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    assert profile_csv(packed).options == plain.options


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"is empty: no header line, no rows"),
        ("a,b,c\n", r"has a header but no rows"),
        ("1,2,3\n4,5,6\n", r"has no header line \(the first line is '1,2,3'\)"),
    ],
)
def test_unusable_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        profile_csv(_csv(tmp_path, text))


def test_missing_unreadable_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--dataset '.*nothere.csv' does not exist"):
        profile_csv(tmp_path / "nothere.csv")
    with pytest.raises(UsageError, match=r"is a directory; give one CSV file"):
        profile_csv(tmp_path)
    binary = tmp_path / "latin1.csv"
    binary.write_bytes("name,day\nZ\xfcrich,2024-01-01\n".encode("latin-1"))
    with pytest.raises(UsageError, match=r"is not UTF-8 text .*save it as UTF-8"):
        profile_csv(binary)


def test_no_time_column_no_usable_column_and_too_short(tmp_path: Path) -> None:
    no_time = _csv(tmp_path, "id,amount\n1,2.5\n2,3.5\n", "a.csv")
    with pytest.raises(UsageError, match=r"has no date or timestamp column \(id \(int\), amount \(double\)\)"):
        plan_pipeline("shop", no_time, tmp_path)
    text_only = _csv(tmp_path, "day,city\n2024-01-01,Paris\n2024-03-01,Rome\n", "b.csv")
    with pytest.raises(UsageError, match=r"has no column a model can use: .*\(city \(string\)\)"):
        plan_pipeline("shop", text_only, tmp_path)
    short = _csv(tmp_path, "day,units\n2024-01-01,1\n2024-01-03,2\n", "c.csv")
    with pytest.raises(UsageError, match=r"spans 2 day\(s\) \(2024-01-01 \.\. 2024-01-03\).*at least 10 days"):
        plan_pipeline("shop", short, tmp_path)


@pytest.mark.parametrize("name", ["Sales", "2sales", "sales-eu", "", "sales eu"])
def test_names_that_are_not_identifiers_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match=r"is not a lowercase identifier .*try '"):
        plan_pipeline(name, _sales(tmp_path), tmp_path)


def test_label_choices(tmp_path: Path) -> None:
    profile = profile_csv(_sales(tmp_path))
    units = choose_label(profile, "Units")
    assert units is not None and units.column == "units"
    assert units.expr == f"CAST(units > {profile.column('units').median:.6g} AS INT)"
    returned = choose_label(profile, "returned")
    assert returned is not None and returned.expr == "CAST(returned AS INT)"
    promo = choose_label(profile, "promo")
    assert promo is not None and promo.expr == "CAST(promo AS INT)"
    store = choose_label(profile, "store")
    assert store is not None and store.expr.startswith("CAST(store = '") and "choose the class" in store.note
    assert choose_label(profile, None) is None  # nothing is obviously the label
    with pytest.raises(UsageError, match=r"--label 'sold_on' is a date column"):
        choose_label(profile, "sold_on")
    with pytest.raises(UsageError, match=r"'sales.csv' has no column 'revenue' \(columns: sold_on, store, "):
        choose_label(profile, "revenue")
    named = _csv(tmp_path, "day,x,Target\n2024-01-01,1,0\n2024-02-01,2,1\n", "named.csv")
    guessed = choose_label(profile_csv(named), None)
    assert guessed is not None and guessed.column == "target"


def test_init_makes_a_new_project_that_check_accepts(tmp_path: Path) -> None:
    csv = _sales(tmp_path)
    result = init_pipeline("sales", csv, tmp_path / "conf")
    assert result.new_project
    written = {p.relative_to(tmp_path).as_posix() for p in result.written}
    assert {"conf/config.yaml", "conf/pipeline/sales.yaml", "conf/dataset/sales.yaml", "params.yaml"} <= written
    assert "dags/lakeforge_dags.py" in written
    names, problems = check_all(conf_dir=tmp_path / "conf")
    assert names == ["sales"] and [str(p) for p in problems] == []
    cfg = load_config(conf_dir=tmp_path / "conf")
    assert cfg.dataset.sales.source.path == "sales.csv"
    assert cfg.dataset.sales.source.options == {"header": "true", "nullValue": "NA"}
    assert cfg.dataset.sales.primary_key == ["sold_on", "store"]
    price = next(c for c in cfg.dataset.sales.columns if c.name == "price")
    assert (price.type, price.nullable, price.source_name) == ("double", True, "Price ($)")
    assert cfg.features.entity == ["store"] and cfg.features.label is None
    assert cfg.model.label is None and "price" in cfg.model.features
    # run_date at 80% of 119 days; train/validation/test 60/20/20 before it; score the rest.
    assert cfg.pipeline.repro.train.run_date == "2024-04-06"
    assert dict(cfg.model.splits.test) == {"start": "-19d", "end": "0d"}
    assert dict(cfg.pipeline.repro.score) == {"run_date": None, "start_date": "2024-04-06", "end_date": "2024-04-29"}
    steps = "\n".join(next_steps(result))
    assert "set what to predict: features.label in conf/features/sales.yaml" in steps
    assert "lakeforge run train --run-date 2024-04-06\n" in steps  # the default pipeline: no pipeline=


def test_init_with_a_label_adds_past_outcome_windows(tmp_path: Path) -> None:
    result = init_pipeline("sales", _sales(tmp_path), tmp_path / "conf", label="returned")
    features = yaml.safe_load((tmp_path / "conf" / "features" / "sales.yaml").read_text())
    assert features["label"] == {"name": "target", "expr": "CAST(returned AS INT)", "available_after": "1d"}
    assert [w["name"] for w in features["windows"]] == ["rows_7d", "past_target_7d"]
    assert features["windows"][1]["lag"] == "1d" and features["windows"][1]["by"] == ["store"]
    model = yaml.safe_load((tmp_path / "conf" / "model" / "sales.yaml").read_text())
    assert model["label"] == "target" and "returned" not in model["features"]
    assert [str(p) for p in check_all(conf_dir=result.conf_dir)[1]] == []


def test_init_adds_a_pipeline_to_an_existing_project_and_refuses_to_overwrite(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(REPO_CONF, conf)
    before = (conf / "config.yaml").read_text()
    result = init_pipeline("sales", _sales(tmp_path), conf, label="units")
    assert not result.new_project and (conf / "config.yaml").read_text() == before
    assert not (tmp_path / "params.yaml").exists()
    names, problems = check_all(conf_dir=conf)
    assert names == ["flight_delay", "sales"] and [str(p) for p in problems] == []
    assert "lakeforge run ingest pipeline=sales" in "\n".join(next_steps(result))
    with pytest.raises(
        UsageError, match=r"would overwrite conf/dataset/sales.yaml, conf/features/sales.yaml, .*--force"
    ):
        init_pipeline("sales", _sales(tmp_path), conf)
    init_pipeline("sales", _sales(tmp_path), conf, force=True)
    assert "label: null" in (conf / "features" / "sales.yaml").read_text()
    with pytest.raises(UsageError, match=r"would overwrite conf/dataset/flights.yaml; .*--dataset-name"):
        init_pipeline("flights_two", _sales(tmp_path, name="flights.csv"), conf)


def test_duplicate_headers_and_a_key_as_label_are_refused(tmp_path: Path) -> None:
    twice = _csv(tmp_path, "day,units,units\n2024-01-01,1,2\n", "twice.csv")
    with pytest.raises(UsageError, match=r"names column\(s\) 'units' twice in its header"):
        profile_csv(twice)
    with pytest.raises(UsageError, match=r"--label 'store' is part of the primary key guess \(sold_on, store\)"):
        plan_pipeline("sales", _sales(tmp_path), tmp_path, label="store")
