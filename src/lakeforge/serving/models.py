"""The model versions a server answers with: the serving alias (and the canary's), loaded once,
swapped when the registry moves an alias.

With ``runtime="onnx"`` each version is scored by its ONNX export (`lakeforge.serving.onnx`)
under onnxruntime instead of the estimator it was logged as; its reasons are then by occlusion.

A request takes the current `Served` set once and scores with it to the end, so a promotion or a
rollback in the middle of a request changes nothing for that request, and no request waits for
a load: the new version is loaded beside the old one and then swapped in by one assignment.
"""

from __future__ import annotations

import copy
import logging
import pickle
import threading
from dataclasses import dataclass, replace
from typing import Any

from lakeforge.scoring.model import ScoringModel, load_model, scorer_for
from lakeforge.scoring.predict import _LOADED, Scorer

log = logging.getLogger(__name__)
RUNTIMES = ("native", "onnx")  # native: the estimator as logged (LightGBM, scikit-learn); onnx: its export


@dataclass(frozen=True)
class Served:
    """One loaded model version behind an alias, and how it scores."""

    alias: str
    role: str  # serving | canary
    model: ScoringModel
    scorer: Scorer


@dataclass(frozen=True)
class ServedSet:
    """The versions serving now: the serving alias, and the canary's with its fraction."""

    serving: Served
    canary: Served | None
    canary_fraction: float

    def versions(self) -> dict[str, int]:
        out = {self.serving.alias: self.serving.model.version}
        if self.canary is not None:
            out[self.canary.alias] = self.canary.model.version
        return out


class Models:
    """Loads the configured aliases of one registered model and reloads them when they move."""

    def __init__(
        self, client: Any, model_cfg: Any, scoring: Any, alias: str | None = None, runtime: str = "native"
    ) -> None:
        if runtime not in RUNTIMES:
            from lakeforge.errors import UsageError

            raise UsageError(f"unknown runtime '{runtime}'; choose one of {', '.join(RUNTIMES)}")
        self.client = client
        self.name = str(model_cfg.name)
        self.task = str(model_cfg.task)
        self.runtime = runtime
        self.scoring = scoring
        if runtime == "onnx" and str(scoring.reasons.method) in ("path", "treeshap"):
            # Path attribution and TreeSHAP read the trees' node values, which an ONNX file does not keep.
            log.warning("serve: runtime onnx computes reasons by occlusion, not %s", scoring.reasons.method)
            self.scoring = copy.deepcopy(scoring)
            self.scoring.reasons.method = "occlusion"
        self.alias = alias or str(scoring.alias)
        canary = scoring.get("canary")
        self.canary_alias = None if canary is None or alias is not None else str(canary.alias)
        self.canary_fraction = 0.0 if self.canary_alias is None else float(canary.fraction)
        self._lock = threading.Lock()
        self.current: ServedSet | None = None
        self.swaps = 0

    def _load(self, alias: str, role: str, previous: Served | None) -> Served:
        from lakeforge.tracking.registry import alias_version

        version = alias_version(self.client, self.name, alias)
        if previous is not None and version is not None and int(version) == previous.model.version:
            return previous
        model = load_model(self.client, self.name, alias, self.task)
        if self.runtime == "onnx":
            from lakeforge.serving.onnx import load_onnx

            model = replace(model, estimator=load_onnx(self.client, model))
        scorer = scorer_for(model, self.scoring, pickle.dumps(model.estimator), (), num_threads=1)
        scorer.load()  # unpickle and compile the trees now, not in the first request after a swap
        return Served(alias, role, model, scorer)

    def refresh(self) -> bool:
        """Load what the aliases point at now; True when a version changed (then swapped in)."""
        with self._lock:
            old = self.current
            serving = self._load(self.alias, "serving", None if old is None else old.serving)
            canary = (
                None
                if self.canary_alias is None
                else self._load(self.canary_alias, "canary", None if old is None else old.canary)
            )
            new = ServedSet(serving, canary, self.canary_fraction)
            if old is not None and new.versions() == old.versions():
                return False
            self.current = new
            if old is not None:
                self.swaps += 1
                log.info("serve: %s now %s (was %s)", self.name, new.versions(), old.versions())
                for gone in (old.serving, old.canary):
                    if gone is not None and gone not in (new.serving, new.canary):
                        _LOADED.pop(gone.scorer.key, None)  # the worker cache of batch scoring's Scorer
            return True


class Poller:
    """Calls ``models.refresh()`` every ``interval`` seconds in a daemon thread; a failed check
    (the registry unreachable) is logged and the current versions keep serving."""

    def __init__(self, models: Models, interval: float) -> None:
        self.models = models
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lakeforge-alias-poller", daemon=True)
        self.last_error: str | None = None

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.models.refresh()
                self.last_error = None
            except Exception as exc:  # keep serving the loaded versions; say why the check failed
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("serve: alias check failed, still serving %s: %s", self.models.name, self.last_error)
