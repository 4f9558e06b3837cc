"""Which config values are credentials, and how a config is shown without them.

Credentials reach lakeforge only through ``${oc.env:NAME}`` (:mod:`lakeforge.config.checks`
refuses one written literally). Whatever writes or logs a composed config (params.yaml, the
MLflow run's ``config/composed.yaml``, its params, messages) writes it unresolved, so a credential
shows as its reference ``${oc.env:NAME}``, never as its value. :func:`redact` is the last line of
defence for a config that skipped the checks (one rebuilt from a run's record, one built in code):
under a secret-looking key only an environment reference survives, anything else becomes ``***``;
a password inside a URL, or a ``password=…`` parameter, becomes ``***`` under any key.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# Key names that hold a credential: password, token, client_secret, AWS_SECRET_ACCESS_KEY,
# spark.hadoop.fs.s3a.secret.key, azure_storage_account_key, private_key, credentials …
# (dots and dashes count as underscores, so Spark/Hadoop keys match too).
_SECRET_KEY = re.compile(
    r"passw(?:or)?d|pwd|passphrase|secret|token|credential|(?:api|access|account|private|sas|signing)_?key",
    re.IGNORECASE,
)
# A whole value that is one environment reference, with an optional default: ${oc.env:NAME} or
# ${oc.env:NAME,default}. Group 1: the part kept as is; group 2: the default, if any.
_ENV_REFERENCE = re.compile(r"^(\$\{oc\.env:[^,}]+)(?:,([^}]*))?\}$")
# A whole value that points to another key (${storage.options.password}): that key is redacted itself.
_KEY_REFERENCE = re.compile(r"^\$\{[A-Za-z_][\w.\[\]-]*\}$")
# user:PASSWORD@ in a URL, and ?password=VALUE (or ;pwd=, &sig=, …) parameters of a URL or JDBC
# connection string; a value that is an interpolation (${…}) is a reference and kept. Only in text
# with "://" (a SQL expression's "sig=1" is not a parameter).
_URL_PASSWORD = re.compile(r"(://[^/:@\s]*:)(?!\$\{)([^@/\s]+)(?=@)")
_PARAM_SECRET = re.compile(
    r"((?<=[?&;])(?:password|passwd|pwd|secret|token|api_?key|access_?key|sig|signature)=)(?!\$\{)([^;&\s]+)",
    re.IGNORECASE,
)


def is_secret_key(key: object) -> bool:
    """True when a config key (the last part of its path) names a credential."""
    return bool(_SECRET_KEY.search(re.sub(r"[.\-\s]", "_", str(key))))


def mask_credentials(text: str) -> str:
    """``text`` with URL passwords and ``password=…``-style URL parameters replaced by ``***``."""
    if "://" not in text:
        return text
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK, text)
    return _PARAM_SECRET.sub(lambda m: m.group(1) + MASK, text)


def literal_default(value: str) -> str | None:
    """The default of ``${oc.env:NAME,default}`` when it is written out (a credential in the file).

    None for a plain reference, an empty default (``""``, ``null``) or one that is itself a reference.
    """
    reference = _ENV_REFERENCE.match(value)
    default = reference.group(2) if reference else None
    if default is None or default.strip() in ('""', "''", "", "null") or default.strip().startswith("${"):
        return None
    return default


def redact_value(key: object, value: Any) -> Any:
    """One value as it may be shown: under a secret-looking key only an environment reference (a
    non-empty default masked), else ``***``; any other string with its URL passwords masked."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    if not is_secret_key(key):
        return mask_credentials(value) if isinstance(value, str) else value
    if value == "" or (isinstance(value, str) and _KEY_REFERENCE.match(value)):
        return value
    reference = _ENV_REFERENCE.match(value) if isinstance(value, str) else None
    if reference is None or not isinstance(value, str):
        return MASK  # a literal: numbers too (YAML reads `password: 123456` as one)
    # ${oc.env:NAME} and ${oc.env:NAME,""} are kept; a non-empty default is a literal credential.
    return value if literal_default(value) is None else f"{reference[1]},{MASK}}}"


def redact(data: Any, key: object = "") -> Any:
    """Plain config data (dicts, lists, scalars; interpolations unresolved) with every credential masked."""
    if isinstance(data, dict):
        return {k: redact(v, k) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(item, key) for item in data]
    return redact_value(key, data)
