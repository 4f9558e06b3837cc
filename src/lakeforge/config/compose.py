"""Compose conf/ with Hydra's compose API, then check it; every problem becomes a ConfigError."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra._internal import config_loader_impl
from hydra._internal.defaults_list import DefaultsList
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lakeforge.config.checks import check_nodes, plain
from lakeforge.config.crossref_ml import check_references
from lakeforge.config.defaults_walk import check_conf_files
from lakeforge.config.hydra_errors import translate
from lakeforge.config.locate import Locator
from lakeforge.config.schema import register_schemas
from lakeforge.errors import ConfigError, ConfigErrors

CONFIG_NAME = "config"
CONF_ENV = "LAKEFORGE_CONF"
_COMPOSE_ERRORS = (HydraException, OmegaConfBaseException, yaml.YAMLError, ValueError, KeyError)


def find_conf_dir(start: Path | None = None) -> Path:
    """The conf/ directory: ``$LAKEFORGE_CONF`` wins, else ``conf/`` in ``start`` (cwd) or a parent."""
    env = os.environ.get(CONF_ENV)
    if env:
        path = Path(env).expanduser().absolute()
        if not (path / f"{CONFIG_NAME}.yaml").is_file():
            raise ConfigError(
                f"{CONF_ENV}={env} has no {CONFIG_NAME}.yaml; point it to the project's conf/", key=CONF_ENV
            )
        return path
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if (folder / "conf" / f"{CONFIG_NAME}.yaml").is_file():
            return folder / "conf"
    raise ConfigError(
        f"no conf/{CONFIG_NAME}.yaml in '{here}' or any parent directory; run from the "
        f"project or set {CONF_ENV}=/path/to/conf"
    )


def _locator(conf_dir: Path, overrides: Sequence[str]) -> Locator:
    """The (package, file) of every YAML in the defaults list; empty if it cannot be computed."""
    try:
        loader = GlobalHydra.instance().config_loader()
        defaults = loader.compute_defaults_list(CONFIG_NAME, list(overrides), RunMode.RUN)
    except _COMPOSE_ERRORS:
        return Locator(conf_dir=conf_dir)
    return _locator_of(conf_dir, defaults)


def _locator_of(conf_dir: Path, defaults: DefaultsList | None) -> Locator:
    """The locator of a computed defaults list (None: the list could not be computed)."""
    loc = Locator(conf_dir=conf_dir)
    for entry in defaults.defaults if defaults else ():
        path = entry.config_path or ""
        if not path.startswith("hydra/"):
            loc.placements.append((entry.package or "", path, entry.parent or ""))
        if path.startswith("hydra/") or path == "hydra/config" or path.endswith("/schema"):
            continue
        if (conf_dir / f"{path}.yaml").is_file():
            loc.sources.append((entry.package or "", path))
    return loc


@contextmanager
def _recorded_defaults() -> Iterator[list[DefaultsList]]:
    """The defaults list Hydra computes while composing, kept for the locator.

    Computing it a second time, as ``compute_defaults_list`` does, costs as much as the rest of
    the compose (1.3 s of 2.6 s for the shipped conf/ under load): every job and every
    ``lakeforge check`` paid it. Hydra has no public way to hand it back, so its module-level
    ``create_defaults_list`` (hydra-core 1.3, pinned) is wrapped for the duration of one compose.
    """
    original = config_loader_impl.create_defaults_list
    seen: list[DefaultsList] = []

    def recording(*args: Any, **kwargs: Any) -> DefaultsList:
        result = original(*args, **kwargs)
        seen.append(result)
        return result

    config_loader_impl.create_defaults_list = recording
    try:
        yield seen
    finally:
        config_loader_impl.create_defaults_list = original


def _compose(conf_dir: Path, overrides: Sequence[str]) -> tuple[DictConfig | None, Locator, list[ConfigError]]:
    """Compose once; returns the config (None on failure), the locator and every problem found."""
    register_schemas()
    GlobalHydra.instance().clear()  # a stale Hydra (e.g. a failed earlier compose) must not leak in
    loc = Locator(conf_dir=conf_dir)
    unreadable = check_conf_files(conf_dir, CONFIG_NAME, overrides)
    if unreadable:
        return None, loc, unreadable
    try:
        with initialize_config_dir(str(conf_dir.absolute()), version_base="1.3", job_name="lakeforge"):
            with _recorded_defaults() as defaults:
                try:
                    cfg = compose(config_name=CONFIG_NAME, overrides=list(overrides))
                except _COMPOSE_ERRORS as exc:
                    loc = _locator_of(conf_dir, defaults[0] if defaults else None)
                    return None, loc, [translate(exc, loc, overrides)]
            loc = _locator_of(conf_dir, defaults[0])
    except _COMPOSE_ERRORS as exc:
        return None, loc, [translate(exc, loc, overrides)]
    finally:
        GlobalHydra.instance().clear()
    problems = check_nodes(cfg, loc)
    check_references(
        plain(cfg),
        lambda key, msg: problems.append(ConfigError(msg, file=loc.file_for(key), key=key)),
        conf_dir.absolute().parent,
    )
    OmegaConf.set_struct(cfg, False)
    cfg.project_root = str(conf_dir.absolute().parent)
    OmegaConf.set_struct(cfg, True)
    return cfg, loc, _dedupe([_blame_override(p, overrides) for p in problems])


def _blame_override(problem: ConfigError, overrides: Sequence[str]) -> ConfigError:
    """Name the command-line override, not a file, when an override set the bad key."""
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if problem.key and problem.file and key == problem.key:
            return ConfigError(problem.detail, key=f"override '{override}': {problem.key}")
    return problem


def _dedupe(problems: list[ConfigError]) -> list[ConfigError]:
    """Problems in order, each message once."""
    seen: set[str] = set()
    unique = []
    for problem in problems:
        if str(problem) not in seen:
            seen.add(str(problem))
            unique.append(problem)
    return unique


def load_config(
    overrides: Sequence[str] = (), *, conf_dir: Path | None = None, pipeline: str | None = None
) -> DictConfig:
    """Compose conf/config.yaml with ``overrides`` (and ``pipeline=<name>``) and check it.

    Raises ConfigError for one problem, ConfigErrors for several.
    """
    conf = conf_dir or find_conf_dir()
    all_overrides = [*overrides, *([f"pipeline={pipeline}"] if pipeline else [])]
    cfg, _, problems = _compose(Path(conf), all_overrides)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigErrors(problems)
    assert cfg is not None
    return cfg


LAKE_GROUPS = ("storage", "spark", "tracking")


def load_lake_config(overrides: Sequence[str] = (), *, conf_dir: Path | None = None) -> DictConfig:
    """Compose only the groups the lake commands need (storage, spark, tracking): no pipeline.

    ``lakeforge sql``/``tables``/``history`` use this: leaving the pipeline's
    datasets, features and model out makes composition ~5x faster. Overrides of
    other groups do not matter to these commands and are left out.
    """
    conf = Path(conf_dir or find_conf_dir())
    kept = [o for o in overrides if o.lstrip("+~").split("=", 1)[0].split("@")[0].split(".")[0] in LAKE_GROUPS]
    unreadable = check_conf_files(conf, CONFIG_NAME, [*kept, "~pipeline"])
    if unreadable:
        raise unreadable[0] if len(unreadable) == 1 else ConfigErrors(unreadable)
    register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(conf.absolute()), version_base="1.3", job_name="lakeforge"):
            try:
                cfg = compose(config_name=CONFIG_NAME, overrides=[*kept, "~pipeline"])
            except _COMPOSE_ERRORS as exc:
                raise translate(exc, _locator(conf, kept), kept) from None
    except _COMPOSE_ERRORS as exc:
        raise translate(exc, Locator(conf_dir=conf), kept) from None
    finally:
        GlobalHydra.instance().clear()
    lake = OmegaConf.create({group: cfg[group] for group in LAKE_GROUPS})
    missing = [f"{g}.{k}" for g in LAKE_GROUPS for k in cfg[g] if OmegaConf.is_missing(cfg[g], k)]
    if missing:
        raise ConfigError(f"required value(s) missing: {', '.join(missing)}", file=f"{conf.name}/config.yaml")
    lake.project_root = str(conf.absolute().parent)
    return lake


def pipeline_names(conf_dir: Path) -> list[str]:
    """The pipelines declared in conf/pipeline/*.yaml."""
    return sorted(p.stem for p in (conf_dir / "pipeline").glob("*.yaml"))


def check_all(overrides: Sequence[str] = (), conf_dir: Path | None = None) -> tuple[list[str], list[ConfigError]]:
    """Compose every pipeline in conf/pipeline/ and collect all problems (never raises for them)."""
    names, problems, _ = check_all_with_default(overrides, conf_dir)
    return names, problems


def check_all_with_default(
    overrides: Sequence[str] = (), conf_dir: Path | None = None
) -> tuple[list[str], list[ConfigError], DictConfig | None]:
    """`check_all`, plus the default composition (the one `load_config` gives; None if it failed).

    The default composition is one of the pipelines' (conf/config.yaml picks one), so that
    pipeline is not composed twice: each composition costs ~1.5 s of Hydra here.
    """
    conf = Path(conf_dir) if conf_dir else find_conf_dir()
    names = pipeline_names(conf)
    cfg, _, problems = _compose(conf, list(overrides))
    default = cfg.pipeline.get("name") if cfg is not None and cfg.get("pipeline") is not None else None
    for name in names:
        if name != default:
            _, _, found = _compose(conf, [*overrides, f"pipeline={name}"])
            problems.extend(found)
    return names, _dedupe(problems), cfg


def config_hash(cfg: DictConfig) -> str:
    """A stable hash of the resolved config (first 12 hex digits of sha256); ignores project_root.

    Credentials are masked first: the hash goes into commit metadata and MLflow tags, where it
    must not confirm a guessed secret (and rotating a secret is not a config change).
    """
    from lakeforge.config.secrets import redact

    data = redact(OmegaConf.to_container(cfg, resolve=True))
    assert isinstance(data, dict)
    data.pop("project_root", None)
    text = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def project_root(cfg: DictConfig | None = None) -> Path:
    """The directory relative paths resolve against: the parent of conf/."""
    root = cfg.get("project_root") if cfg is not None else None
    if root:
        return Path(str(root))
    try:
        return find_conf_dir().parent
    except ConfigError:
        return Path.cwd()


def resolve_path(cfg: DictConfig | None, value: str) -> str:
    """Make a config path absolute against the project root; URIs pass unchanged.

    ``sqlite:///relative.db`` becomes ``sqlite:////abs/relative.db``; ``s3://…`` is kept.
    """
    text = str(value)
    if text.startswith("sqlite:///") and not text.startswith("sqlite:////"):
        return "sqlite:///" + resolve_path(cfg, text.removeprefix("sqlite:///"))
    if text.startswith("file://"):
        return text
    if "://" in text or text.startswith("mlflow-artifacts:"):
        return text
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = project_root(cfg) / path
    return os.path.normpath(path)
