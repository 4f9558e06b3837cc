"""The model registry's aliases as lakeforge moves them: ``challenger`` (the latest trained version)
and ``champion`` (the version that serves), with every move of ``champion`` recorded.

A move of ``champion`` — by the gate, by hand (``lakeforge promote``) or back (``lakeforge
rollback``) — appends an entry to the registered model's tag ``lakeforge.champion_history`` (JSON:
version, previous version, kind, reason, who, when, gate run) and tags the version it moved to.
The history is a stack: promotions push, a rollback pops, so rolling back twice goes two
champions back. MLflow raises INVALID_PARAMETER_VALUE for a missing alias, so aliases are read
from ``get_registered_model(name).aliases`` (``{alias: version}``), never fetched one by one.
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lakeforge.errors import RegistryError, TransientError, did_you_mean

CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_TAG = "lakeforge.champion_history"
GATE_TAG = "lakeforge.gate"  # version tags lakeforge.gate.decision, .reason, .run_id, .check.<name>


@dataclass(frozen=True)
class ChampionMove:
    """One move of the alias ``champion``."""

    model: str
    version: str
    previous: str | None
    kind: str  # gate | manual | rollback
    reason: str
    by: str
    at: str
    gate_run: str | None = None

    def describe(self) -> str:
        """One line for a person."""
        was = f"v{self.previous}" if self.previous else "no champion"
        return f"{self.model}: champion v{self.version} (was {was}; {self.kind} by {self.by}: {self.reason})"


def who() -> str:
    """Who moves an alias: $LAKEFORGE_USER (e.g. set by a scheduler), else the OS user."""
    try:
        return os.environ.get("LAKEFORGE_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def registered_model(client: Any, name: str) -> Any:
    """The registered model ``name``; a RegistryError listing the registered ones when missing."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
            raise
    known = [m.name for m in client.search_registered_models()]
    listed = ", ".join(sorted(known)) or "none yet: run `lakeforge run train` first"
    raise RegistryError(f"no registered model '{name}'{did_you_mean(name, known)}; registered models: {listed}")


def model_version(client: Any, name: str, version: str) -> Any:
    """Version ``version`` of ``name``; a RegistryError listing the versions when missing."""
    from mlflow.exceptions import MlflowException

    registered_model(client, name)
    text = str(version).removeprefix("v")
    if text.isdigit():
        try:
            return client.get_model_version(name, text)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
                raise
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    raise RegistryError(
        f"model '{name}' has no version '{version}'; versions: {', '.join(map(str, versions)) or 'none'}"
    )


def alias_version(client: Any, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None."""
    found = registered_model(client, name).aliases.get(alias)
    return None if found is None else str(found)


def history(client: Any, name: str) -> list[dict[str, Any]]:
    """Every recorded move of ``champion``, oldest first."""
    text = registered_model(client, name).tags.get(HISTORY_TAG)
    return list(json.loads(text)) if text else []


def _stack(entries: list[dict[str, Any]]) -> list[str]:
    """The champions in order, a rollback having popped the one it replaced."""
    stack: list[str] = []
    for entry in entries:
        if entry["kind"] == "rollback":
            stack.pop()
        else:
            stack.append(str(entry["version"]))
    return stack


def move_champion(
    client: Any,
    name: str,
    version: str,
    *,
    kind: str,
    reason: str,
    expected: str | None,
    gate_run: str | None = None,
) -> ChampionMove:
    """Point ``champion`` at ``version`` and record the move.

    ``expected`` is the champion the caller based its decision on; if another process moved the
    alias meanwhile, nothing moves and a TransientError asks for a rerun.
    """
    current = alias_version(client, name, CHAMPION)
    if current != expected:
        raise TransientError(
            f"model '{name}': champion moved from {expected and 'v' + expected} to {current and 'v' + current} "
            "while this decision was made; nothing was changed, rerun it"
        )
    move = ChampionMove(
        name, str(version), current, kind, reason, who(), datetime.now(UTC).isoformat(timespec="seconds"), gate_run
    )
    entries = [*history(client, name), {k: v for k, v in move.__dict__.items() if k != "model"}]
    client.set_registered_model_alias(name, CHAMPION, str(version))
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(entries))
    client.set_model_version_tag(name, str(version), "lakeforge.champion_since", move.at)
    return move


def record_decision(
    client: Any, name: str, version: str, decision: str, reason: str, run_id: str | None, checks: dict[str, str]
) -> None:
    """Tag ``version`` with a gate decision (``promoted``, ``refused``, ``promoted_by_hand``...)."""
    tags = {f"{GATE_TAG}.decision": decision, f"{GATE_TAG}.reason": reason}
    if run_id:
        tags[f"{GATE_TAG}.run_id"] = run_id
    tags.update({f"{GATE_TAG}.check.{check}": text for check, text in checks.items()})
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)


def promote_by_hand(cfg: Any, name: str, version: str, reason: str) -> ChampionMove:
    """``lakeforge promote``: make ``version`` the champion without the gate, recorded as ``manual``."""
    from lakeforge.tracking.store import connect

    client = connect(cfg).client
    target = str(model_version(client, name, version).version)
    current = alias_version(client, name, CHAMPION)
    if current == target:
        raise RegistryError(f"model '{name}': v{target} is already the champion; nothing to do")
    move = move_champion(client, name, target, kind="manual", reason=reason, expected=current)
    record_decision(client, name, target, "promoted_by_hand", f"{reason} ({move.by})", None, {})
    return move


def rollback(cfg: Any, name: str, reason: str) -> ChampionMove:
    """``lakeforge rollback``: point ``champion`` back at the champion before the current one."""
    from lakeforge.tracking.store import connect

    client = connect(cfg).client
    current = alias_version(client, name, CHAMPION)
    if current is None:
        raise RegistryError(f"model '{name}' has no champion to roll back")
    stack = _stack(history(client, name))
    if not stack or stack[-1] != current:
        raise RegistryError(
            f"model '{name}': champion v{current} was not set by lakeforge (its history ends at "
            f"{'v' + stack[-1] if stack else 'nothing'}); choose the version with `lakeforge promote {name} VERSION`"
        )
    if len(stack) < 2:
        raise RegistryError(
            f"model '{name}': v{current} is the first champion; there is no earlier one to roll back to"
        )
    move = move_champion(client, name, stack[-2], kind="rollback", reason=reason, expected=current)
    client.set_model_version_tag(name, current, "lakeforge.rolled_back_at", move.at)
    client.set_model_version_tag(name, current, "lakeforge.rolled_back_reason", f"{reason} ({move.by})")
    return move
