"""Credentials in the config: what counts as one, how a config is shown without them, and what is refused.

The end-to-end proof that none reaches a file, a log or an MLflow run is tests/chaos/test_secrets.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from omegaconf import OmegaConf

from lakeforge.config import load_config
from lakeforge.config.params import params_overrides, render_params, write_params
from lakeforge.config.secrets import is_secret_key, mask_credentials, redact
from lakeforge.errors import ConfigError, ConfigErrors


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "smtp_password",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "spark.hadoop.fs.s3a.secret.key",
        "fs.s3a.access.key",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "google_service_account_key",
        "client_secret",
        "api-key",
        "MLFLOW_TRACKING_TOKEN",
        "credentials",
        "private_key",
    ],
)
def test_secret_looking_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["user", "url", "uri", "primary_key", "keys", "lake_root", "host", "AWS_REGION", "spark.executor.memory", 0]
)
def test_ordinary_keys(key: Any) -> None:
    assert not is_secret_key(key)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://bob:s3cr3t@mlflow.example.com", "https://bob:***@mlflow.example.com"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://:${oc.env:REDIS_PASSWORD}@host:6379/0", "redis://:${oc.env:REDIS_PASSWORD}@host:6379/0"),
        (
            "jdbc:postgresql://db:5432/x?user=a&password=pw&ssl=true",
            "jdbc:postgresql://db:5432/x?user=a&password=***&ssl=true",
        ),
        ("jdbc:sqlserver://db;user=a;pwd=pw", "jdbc:sqlserver://db;user=a;pwd=***"),
        ("https://acct.blob.core.windows.net/c?sv=1&sig=abc%3D", "https://acct.blob.core.windows.net/c?sv=1&sig=***"),
        ("jdbc:postgresql://db:5432/x", "jdbc:postgresql://db:5432/x"),
        ("s3://bucket/lake", "s3://bucket/lake"),
        ("CASE WHEN sig=1 AND token='a' THEN 1 END", "CASE WHEN sig=1 AND token='a' THEN 1 END"),  # SQL, no URL
    ],
)
def test_mask_credentials_in_text(text: str, shown: str) -> None:
    assert mask_credentials(text) == shown


def test_redact_keeps_references_and_masks_values() -> None:
    data = {
        "options": {
            "AWS_SECRET_ACCESS_KEY": '${oc.env:AWS_SECRET_ACCESS_KEY,""}',
            "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
            "AWS_REGION": "${oc.env:AWS_REGION,us-east-1}",
        },
        "source": {"user": "etl", "password": "${oc.env:DB_PASSWORD,hunter2}", "url": "jdbc:x://h/d?password=pw"},
        "conf": {"spark.hadoop.fs.s3a.secret.key": "abc", "spark.executor.memory": "2g"},
        "copy": {"password": "${source.password}"},
        "pins": [{"token": 1234}, {"name": "ok"}],
    }
    assert redact(data) == {
        "options": {
            "AWS_SECRET_ACCESS_KEY": '${oc.env:AWS_SECRET_ACCESS_KEY,""}',
            "AWS_ACCESS_KEY_ID": "***",
            "AWS_REGION": "${oc.env:AWS_REGION,us-east-1}",
        },
        "source": {"user": "etl", "password": "${oc.env:DB_PASSWORD,***}", "url": "jdbc:x://h/d?password=***"},
        "conf": {"spark.hadoop.fs.s3a.secret.key": "***", "spark.executor.memory": "2g"},
        "copy": {"password": "${source.password}"},
        "pins": [{"token": "***"}, {"name": "ok"}],
    }


def test_params_yaml_masks_a_credential_that_skipped_the_checks() -> None:
    # A config built in code (or rebuilt from a run's record) never went through `lakeforge check`.
    cfg = OmegaConf.create({"dataset": {"db": {"source": {"password": "hunter2", "user": "${oc.env:DB_USER}"}}}})
    text = render_params(cfg)
    assert "hunter2" not in text
    assert yaml.safe_load(text)["dataset"]["db"]["source"] == {"password": "***", "user": "${oc.env:DB_USER}"}


def test_params_yaml_keeps_the_shipped_references(conf_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sentinel-aws-secret")
    cfg = load_config(["storage=s3"], conf_dir=conf_copy)
    text = write_params(cfg, conf_copy.parent).read_text()
    assert "sentinel-aws-secret" not in text
    assert yaml.safe_load(text)["storage"]["options"]["AWS_SECRET_ACCESS_KEY"] == '${oc.env:AWS_SECRET_ACCESS_KEY,""}'


def _dvc_composed(conf_dir: Path, overrides: list[str]) -> str:
    """params.yaml as `dvc exp run -S` writes it: DVC's own Hydra composition, interpolations resolved."""
    from dvc.utils.hydra import compose_and_dump

    out = conf_dir.parent / "params.yaml"
    compose_and_dump(str(out), str(conf_dir), None, "config", str(conf_dir.parent), overrides)
    return out.read_text()


def test_a_dvc_experiment_never_turns_a_credential_into_an_override(
    conf_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sentinel-at-dvc-time")
    monkeypatch.setenv("LAKEFORGE_REDIS_URL", "redis://:sentinel-redis@127.0.0.1:6379/0")
    written = _dvc_composed(conf_copy, ["storage=s3", "online=redis", "model.params.num_leaves=63"])
    assert "sentinel-at-dvc-time" in written and "sentinel-redis" in written  # DVC resolved them
    # The job's environment differs from DVC's (another shell, a rotated key): still no override.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sentinel-at-job-time")
    monkeypatch.setenv("LAKEFORGE_REDIS_URL", "redis://:sentinel-redis-2@127.0.0.1:6379/0")
    cfg = load_config(["storage=s3", "online=redis"], conf_dir=conf_copy)

    overrides = params_overrides(cfg, conf_copy.parent)

    assert overrides == ["model.params.num_leaves=63"]


def test_a_literal_credential_under_any_spelling_of_its_key_is_refused(conf_copy: Path) -> None:
    spark = conf_copy / "spark" / "local.yaml"
    spark.write_text(spark.read_text() + "conf:\n  spark.hadoop.fs.s3a.secret.key: abc123\n")
    storage = conf_copy / "storage" / "local.yaml"
    storage.write_text(storage.read_text().replace("options: {}", "options:\n  AZURE_STORAGE_ACCOUNT_KEY: abc123"))

    with pytest.raises(ConfigErrors) as raised:
        load_config([], conf_dir=conf_copy)

    messages = [str(e) for e in raised.value.problems]
    assert any(
        m.startswith("conf/spark/local.yaml: spark.conf.spark.hadoop.fs.s3a.secret.key: literal credential")
        for m in messages
    ), messages
    assert any(
        m.startswith("conf/storage/local.yaml: storage.options.AZURE_STORAGE_ACCOUNT_KEY: literal credential")
        for m in messages
    ), messages
    assert "abc123" not in "\n".join(messages)


def test_an_environment_reference_is_accepted(conf_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spark = conf_copy / "spark" / "local.yaml"
    spark.write_text(spark.read_text() + "conf:\n  spark.hadoop.fs.s3a.secret.key: ${oc.env:S3_SECRET}\n")
    monkeypatch.setenv("S3_SECRET", "from-the-environment")
    cfg = load_config([], conf_dir=conf_copy)
    assert cfg.spark.conf["spark.hadoop.fs.s3a.secret.key"] == "from-the-environment"
    with pytest.raises(ConfigError):  # keeps the shipped checks: no literal in a password either
        load_config(["dataset.airlines.source.password=hunter2"], conf_dir=conf_copy)


def test_a_credential_written_as_the_default_of_an_environment_reference_is_refused(conf_copy: Path) -> None:
    spark = conf_copy / "spark" / "local.yaml"
    spark.write_text(spark.read_text() + "conf:\n  spark.hadoop.fs.s3a.secret.key: ${oc.env:S3_SECRET,abc123}\n")
    with pytest.raises(ConfigError) as raised:
        load_config([], conf_dir=conf_copy)
    message = str(raised.value)
    assert message.startswith("conf/spark/local.yaml: spark.conf.spark.hadoop.fs.s3a.secret.key: literal credential")
    assert "${oc.env:S3_SECRET}" in message and "abc123" not in message
    # An empty default (the shipped conf/storage/s3.yaml) or another reference is no literal.
    for default in ('""', "${oc.env:OTHER_SECRET}"):
        spark.write_text(spark.read_text().replace("${oc.env:S3_SECRET,abc123}", f"${{oc.env:S3_SECRET,{default}}}"))
        load_config([], conf_dir=conf_copy)
        spark.write_text(spark.read_text().replace(f"${{oc.env:S3_SECRET,{default}}}", "${oc.env:S3_SECRET,abc123}"))


def test_training_params_mask_a_credential() -> None:
    from lakeforge.training.run import _params

    model = OmegaConf.create(
        {
            "estimator": {"_target_": "x.Model"},
            "seed": 1,
            "params": {"api_token": "tok-123", "depth": 3, "url": "https://u:p@h"},
        }
    )
    assert _params(model) == {
        "estimator": "x.Model",
        "seed": "1",
        "params.api_token": "***",
        "params.depth": "3",
        "params.url": "https://u:***@h",
    }


def test_the_config_hash_cannot_confirm_a_guessed_secret() -> None:
    from omegaconf import OmegaConf

    from lakeforge.config import config_hash

    def hashed(password: str, rows: int = 5) -> str:
        return config_hash(OmegaConf.create({"source": {"password": password, "rows": rows}}))

    assert hashed("hunter2") == hashed("correct horse")  # the secret does not enter the hash
    assert hashed("hunter2") != hashed("hunter2", rows=6)  # everything else does
