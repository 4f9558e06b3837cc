"""Broken conf/ files the config fuzzer (tests/chaos/test_config_fuzz.py) found: each used to end in a
traceback (exit 70), a hang or a message naming the wrong file; now a ConfigError names the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lakeforge.config import load_config
from lakeforge.config.conf_files import MAX_DEPTH, MAX_EXPANDED_NODES
from lakeforge.errors import ConfigError

from .conftest import edit

MODEL, CONFIG, SPARK_LOCAL = "model/flight_delay.yaml", "config.yaml", "spark/local.yaml"
DEFAULTS_HEAD = "defaults:\n  - schema\n"


def _fails(conf: Path, *expected: str) -> str:
    with pytest.raises(ConfigError, match=re.escape(expected[0])) as info:
        load_config([], conf_dir=conf)
    message = str(info.value)
    for part in expected[1:]:
        assert part in message, message
    assert "Traceback" not in message
    return message


def test_group_option_including_itself(conf_copy: Path) -> None:
    # Hydra recursed until RecursionError (exit 70), or aborted the interpreter in a thread.
    edit(conf_copy, MODEL, DEFAULTS_HEAD, DEFAULTS_HEAD + "  - /model/flight_delay\n")
    _fails(
        conf_copy,
        "conf/model/flight_delay.yaml: defaults: the defaults list includes itself "
        "(model/flight_delay -> model/flight_delay) through the entry '/model/flight_delay'",
    )


def test_primary_config_including_itself(conf_copy: Path) -> None:
    edit(conf_copy, CONFIG, "  - lakeforge_schema\n", "  - lakeforge_schema\n  - config\n")
    _fails(conf_copy, "conf/config.yaml: defaults: the defaults list includes itself (config -> config)")


def test_two_options_including_each_other(conf_copy: Path) -> None:
    edit(conf_copy, SPARK_LOCAL, DEFAULTS_HEAD, DEFAULTS_HEAD + "  - /spark@other: cluster\n")
    edit(conf_copy, "spark/cluster.yaml", DEFAULTS_HEAD, DEFAULTS_HEAD + "  - /spark@back: local\n")
    _fails(
        conf_copy,
        "conf/spark/cluster.yaml: defaults: the defaults list includes itself "
        "(spark/local -> spark/cluster -> spark/local) through the entry '/spark@back: local'",
    )


def test_override_choosing_a_cyclic_option(conf_copy: Path) -> None:
    # The option an override picks is followed, not the one the file names.
    edit(conf_copy, "spark/cluster.yaml", DEFAULTS_HEAD, DEFAULTS_HEAD + "  - /spark/cluster\n")
    load_config([], conf_dir=conf_copy)
    with pytest.raises(ConfigError, match=re.escape("conf/spark/cluster.yaml: defaults: the defaults list includes")):
        load_config(["spark=cluster"], conf_dir=conf_copy)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "conf/spark/local.yaml: (top level): the file holds a list, not a mapping"),
        ("nan\n", "conf/spark/local.yaml: (top level): the file holds the single value 'nan', not a mapping"),
    ],
    ids=["list", "scalar"],
)
def test_file_that_is_not_a_mapping(conf_copy: Path, text: str, expected: str) -> None:
    # OmegaConf.load raised OSError('Invalid loaded object type: float'): exit 70.
    (conf_copy / SPARK_LOCAL).write_text(text)
    _fails(conf_copy, expected, "a config file is 'key: value' lines (or empty)")


def test_bytes_that_are_not_utf8(conf_copy: Path) -> None:
    # A UnicodeDecodeError was blamed on conf/config.yaml.
    path = conf_copy / SPARK_LOCAL
    path.write_bytes(path.read_bytes().replace(b"master:", b"\xff\xfemaster:"))
    _fails(conf_copy, "conf/spark/local.yaml: line 6, column 1: not UTF-8 text: byte 0xff", "save the file as UTF-8")


def test_control_character(conf_copy: Path) -> None:
    # PyYAML's ReaderError (not a MarkedYAMLError) was blamed on conf/config.yaml.
    edit(conf_copy, SPARK_LOCAL, "master: local[*]", "master: local\x00[*]")
    _fails(conf_copy, "conf/spark/local.yaml: line 6, column 14: invalid YAML: character U+0000 is not allowed")


def test_self_as_a_group_option(conf_copy: Path) -> None:
    # Hydra: AssertionError in get_final_package (exit 70).
    edit(conf_copy, "tracking/local.yaml", "  - _self_\n", "  - {x: _self_}\n")
    _fails(
        conf_copy,
        "conf/tracking/local.yaml: defaults[1]: '_self_' is not an option of 'x': write '- _self_' as an entry",
    )


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ("  - 5\n", "defaults[1]: a number '5' is not a config name"),
        ("  - [a, b]\n", "defaults[1]: a list of 2 items is not one 'group: option' pair"),
        ("  - {a: x, b: y}\n", "defaults[1]: a mapping of 2 items is not one 'group: option' pair"),
        ("  - {true: x}\n", "defaults[1]: the group 'true' is a boolean, not a group name"),
        ("  - {'@pkg': x}\n", "defaults[1]: '@pkg' names no config group"),
        ("  - {storage: 3}\n", "defaults[1]: an option of 'storage' is a number, not a name"),
    ],
    ids=["number", "list", "two keys", "boolean group", "no group", "number option"],
)
def test_unreadable_defaults_entry(conf_copy: Path, entries: str, expected: str) -> None:
    # Hydra: ValueErrors blamed on conf/config.yaml, or asserts (exit 70).
    edit(conf_copy, SPARK_LOCAL, DEFAULTS_HEAD, DEFAULTS_HEAD + entries)
    _fails(conf_copy, f"conf/spark/local.yaml: {expected}", "an entry is a config name ('- schema')")


def test_defaults_not_a_list(conf_copy: Path) -> None:
    edit(conf_copy, SPARK_LOCAL, "defaults:\n  - schema\n  - _self_\n", "defaults: {schema: x}\n")
    _fails(conf_copy, "conf/spark/local.yaml: defaults: 'defaults' is a mapping, not a list")


def test_null_key(conf_copy: Path) -> None:
    # OmegaConf's KeyValidationError 'Incompatible key type NoneType' was blamed on conf/config.yaml.
    edit(conf_copy, SPARK_LOCAL, "driver_memory: 2g", "driver_memory: 2g\n~: 1")
    _fails(conf_copy, "conf/spark/local.yaml: line 8, column 1: a key is null")


def test_broken_interpolation(conf_copy: Path) -> None:
    # GrammarParseError, raised while Hydra loads the file, was blamed on conf/config.yaml.
    edit(conf_copy, SPARK_LOCAL, "driver_memory: 2g", "driver_memory: 2g${oops")
    _fails(
        conf_copy,
        "conf/spark/local.yaml: line 7, column 16: invalid interpolation in '2g${oops'",
        r"escape a literal '${' as '\${'",
    )


def test_alias_inside_its_own_anchor(conf_copy: Path) -> None:
    edit(conf_copy, SPARK_LOCAL, "driver_memory: 2g", "driver_memory: 2g\nloop: &loop [1, *loop]")
    _fails(conf_copy, "conf/spark/local.yaml: line 8, column 7: a YAML alias refers to the anchor it is inside of")


def test_alias_bomb(conf_copy: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    edit(conf_copy, SPARK_LOCAL, "driver_memory: 2g", "driver_memory: 2g\n" + "\n".join(lines))
    _fails(
        conf_copy,
        f"conf/spark/local.yaml: line 12, column 5: more than {MAX_EXPANDED_NODES:,} values or {MAX_DEPTH} nested "
        "levels once YAML aliases are expanded",
    )


def test_alias_chain_nesting_too_deep(conf_copy: Path) -> None:
    lines = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 200)]
    edit(conf_copy, SPARK_LOCAL, "driver_memory: 2g", "driver_memory: 2g\n" + "\n".join(lines))
    _fails(conf_copy, "conf/spark/local.yaml: line ", f"or {MAX_DEPTH} nested levels once YAML aliases are expanded")


@pytest.mark.parametrize("levels", [40, 300, 200_000])
def test_nesting_too_deep(conf_copy: Path, levels: int) -> None:
    # OmegaConf.load raised RecursionError (exit 70) at a few hundred levels; libyaml's composer segfaults
    # at ~100,000.
    edit(conf_copy, SPARK_LOCAL, "driver_memory: 2g", f"driver_memory: 2g\ndeep: {'[' * levels}{']' * levels}")
    _fails(conf_copy, f"conf/spark/local.yaml: line 8, column {6 + MAX_DEPTH}: lists and mappings nested more than")


def test_package_typo_names_the_entry(fixture_conf: Path) -> None:
    # Was 'conf/dataset/schema.yaml: dataset.datasets: unknown key': a file that does not exist.
    edit(fixture_conf, "pipeline/flight_delay.yaml", "/dataset@dataset.flights", "/dataset@datasets.flights")
    _fails(
        fixture_conf,
        "conf/pipeline/flight_delay.yaml: defaults (dataset/flights@datasets.flights): 'datasets': unknown key "
        "(did you mean 'dataset'?)",
        "must be a key the schema has",
    )


def test_key_with_trailing_space(conf_copy: Path) -> None:
    # The full key 'storage. ' broke the message parsing: 'conf/config.yaml: (composition): In 'storage/local': …'.
    edit(conf_copy, "storage/local.yaml", "lake_root: lake", "lake_root: lake\n'x ': 1")
    _fails(conf_copy, "conf/storage/local.yaml: storage.x : unknown key; allowed keys: kind, lake_root")


def test_unresolvable_defaults_interpolation(conf_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Hydra names no file for it: it was blamed on conf/config.yaml.
    monkeypatch.delenv("LAKEFORGE_TEST_UNSET_VAR", raising=False)
    edit(conf_copy, "tracking/local.yaml", "  - schema\n", "  - schema${oc.env:LAKEFORGE_TEST_UNSET_VAR}\n")
    _fails(conf_copy, "conf/tracking/local.yaml: defaults: Error resolving interpolation 'tracking/schema${oc.env:")


def test_group_chosen_twice(conf_copy: Path) -> None:
    # Hydra's 'Multiple values for model' names no file: it was blamed on conf/config.yaml.
    edit(
        conf_copy,
        "pipeline/flight_delay.yaml",
        "  - /model: flight_delay\n",
        "  - /model: flight_delay\n  - /model: x\n",
    )
    _fails(
        conf_copy,
        "conf/pipeline/flight_delay.yaml: defaults (model: x): group 'model' is already set to 'flight_delay' "
        "(conf/pipeline/flight_delay.yaml)",
        "write 'override /model: x' to replace the choice",
    )


def test_override_entry_replaces_a_choice(conf_copy: Path) -> None:
    edit(conf_copy, "pipeline/flight_delay.yaml", "  - _self_\n", "  - override /spark: cluster\n  - _self_\n")
    assert load_config([], conf_dir=conf_copy).spark.shuffle_partitions == 200


def test_misplaced_override_entry_names_its_file(conf_copy: Path) -> None:
    # Hydra's 'In pipeline/flight_delay: Override … is defined before …' was blamed on conf/config.yaml.
    edit(conf_copy, "pipeline/flight_delay.yaml", "  - /model: flight_delay\n", "  - override /spark: cluster\n")
    _fails(conf_copy, "conf/pipeline/flight_delay.yaml: defaults: Override 'spark : cluster' is defined before")
